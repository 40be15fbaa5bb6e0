import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True)
    return next(out.glob("formc-*.whl"))


def test_wheel_carries_templates_and_cli(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "templates_forms/c_hasil_2024.yaml" in names
    assert "cli.py" in names
    assert "ocr/templates/family.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "formc = cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_templates_load_from_the_installed_wheel(wheel, tmp_path):
    # Unpacked beside nothing else: the templates must come from the package data, not the checkout.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "from ocr.templates.catalog import load_templates; import ocr; print(len(load_templates()), ocr.__file__)"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, check=True)
    count, location = run.stdout.split()
    assert count == "19" and location.startswith(str(target))


def test_digit_model_ships_in_the_wheel_and_loads(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    assert {"ocr/reader/models/digits.onnx", "ocr/reader/models/digits.json"} <= set(names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import numpy as np; from ocr.reader.digits import DigitClassifier; import ocr; "
            "print(DigitClassifier().predict([np.full((48, 48), 230, np.uint8)]).shape, ocr.__file__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, check=True)
    assert run.stdout.startswith("(1, 13) " + str(target))


def test_wheel_carries_the_database_migrations(wheel):
    # ResultStore migrates every database it opens, from these files inside the installed package.
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ocr/db/store.py", "ocr/db/migrations/env.py", "ocr/db/migrations/script.py.mako",
            "ocr/db/migrations/versions/0001_results.py"} <= names


def test_wheel_carries_the_review_app(wheel):
    # `formc serve` renders these templates and serves these files from the installed package.
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ocr/db/migrations/versions/0002_review.py", "ocr/web/app.py", "ocr/web/templates/review.html",
            "ocr/web/templates/base.html", "ocr/web/static/style.css", "ocr/web/static/review.js"} <= names

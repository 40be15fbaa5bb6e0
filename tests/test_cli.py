import json
import subprocess
import sys

from click.testing import CliRunner

from cli import main
from ocr.db.store import ResultStore, default_url
from ocr.review.accounts import ROLES, User, authenticate
from ocr.review.workflow import Reviews
from tests.conftest import REPO


def formc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True)


def test_template_list_shows_every_template_with_tags():
    run = formc("template", "list")
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert len([line for line in lines if " tags " in line]) == 19
    assert any(line.startswith("ppwp-2024") and "101,102,103" in line for line in lines)
    # Reference-image templates: listed either way, as usable or as unavailable with why (their scan is not shipped).
    for template_id in ("c1-ppwp-2019-lembar-1", "c1-ppwp-2019-lembar-2"):
        line = next(line for line in lines if line.startswith(template_id))
        assert "reference scan" in line or "unavailable: page" in line


def test_template_schema_is_json_schema():
    schema = json.loads(formc("template", "schema").stdout)
    assert schema["title"] == "TemplateFamily"
    assert {"family", "layouts", "variants", "rules"} <= set(schema["properties"])


def test_unknown_template_is_a_usage_error():
    run = formc("template", "render", "kwk-nowhere-9", "--out", "/dev/null")
    assert run.returncode == 2
    assert "unknown template 'kwk-nowhere-9'" in run.stderr


def test_synth_writes_folders_with_truth(tmp_path):
    run = formc("synth", "kwk-gubernur-tunggal", "--count", "2", "--out", str(tmp_path), "--seed", "1",
                "--profile", "scan", "--workers", "1", "--inconsistent", "0.5")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(tmp_path / "tps-0001"), str(tmp_path / "tps-0002")]
    truths = [json.loads((tmp_path / f"tps-000{i}" / "truth.json").read_text()) for i in (1, 2)]
    assert sorted(t["consistent"] for t in truths) == [False, True]
    for truth in truths:
        assert truth["pages"] == {"1": "page-1.jpg", "2": "page-2.jpg", "3": "page-3.jpg"}
        assert "suara_kolom_kosong" in truth["fields"]
        for name in truth["pages"].values():
            assert (tmp_path / truth["submission"] / name).stat().st_size > 50_000


def test_synth_without_handwriting_file_says_what_to_do(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not an archive")
    run = formc("synth", "kwk-gubernur-2", "--out", str(tmp_path / "o"), "--handwriting", str(bad))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "not a NumPy archive of handwriting" in run.stderr


def test_align_prints_one_json_line_per_photo(tmp_path):
    run = formc("synth", "kwk-bupati-2", "--count", "1", "--out", str(tmp_path), "--seed", "2", "--profile", "scan",
                "--workers", "1")
    assert run.returncode == 0, run.stderr
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a photo")
    pages = sorted((tmp_path / "tps-0001").glob("page-*.jpg"))
    run = formc("align", *map(str, pages), str(junk))
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["aligned"] * 3 + ["refused"]
    assert [line.get("page") for line in lines[:3]] == [1, 2, 3]
    assert lines[0]["template"] == "kwk-bupati-2" and lines[0]["quality"]["tag_read"]
    assert lines[3]["code"] == "not_an_image"


def test_users_add_on_the_command_line(tmp_path):
    url = default_url(tmp_path / "cli.db")
    result = CliRunner().invoke(main, ["users", "add", "sari", "--role", "reviewer", "--db", url, "--password-stdin"],
                                input="a long password\n")
    assert result.exit_code == 0, result.output
    short = CliRunner().invoke(main, ["users", "add", "budi", "--role", "admin", "--db", url, "--password-stdin"],
                               input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    with ResultStore(url) as store:
        user, stored = Reviews(store).credentials("sari")
    assert user == User(user.id, "sari", "reviewer") and stored.startswith("$argon2id$")


def test_users_list_deactivate_set_role_and_reset_password_on_the_command_line(tmp_path):
    url = default_url(tmp_path / "cli.db")

    def users(*args: str, stdin: str | None = None):
        return CliRunner().invoke(main, ["users", *args, "--db", url], input=stdin)

    assert users("add", "sari", "--role", "reviewer", "--password-stdin", stdin="a long password\n").exit_code == 0
    assert users("add", "budi", "--role", "admin", "--password-stdin", stdin="a long password\n").exit_code == 0
    with ResultStore(url) as store:
        reviews = Reviews(store)
        sari = reviews.credentials("sari")[0]
        session = reviews.start_session(sari, "10.0.0.1")
        listed = users("list")
        assert listed.exit_code == 0
        header, budi_line, sari_line = listed.stdout.splitlines()
        assert header.split()[:3] == ["name", "role", "active"]
        assert budi_line.split() == ["budi", "admin", "yes", "never"] and sari_line.split()[:3] == ["sari", "reviewer", "yes"]

        assert users("set-role", "sari", "operator").exit_code == 0
        assert reviews.session_user(session) is None  # ended at once
        assert reviews.credentials("sari")[0].role == "operator"
        session = reviews.start_session(sari, "10.0.0.1")
        assert users("deactivate", "sari").exit_code == 0
        assert reviews.session_user(session) is None and reviews.credentials("sari") is None
        assert users("list").stdout.splitlines()[2].split()[:3] == ["sari", "operator", "no"]
        assert users("deactivate", "sari", "--undo").exit_code == 0

        session = reviews.start_session(sari, "10.0.0.1")
        assert users("reset-password", "sari", stdin="a new password\na new password\n").exit_code == 0  # asked twice
        assert reviews.session_user(session) is None
        assert authenticate(reviews, "sari", "a new password") and not authenticate(reviews, "sari", "a long password")
        generated = users("reset-password", "sari", "--generate")
        assert generated.exit_code == 0 and authenticate(reviews, "sari", generated.stdout.strip())

        nobody = users("deactivate", "nobody")
        assert nobody.exit_code == 1 and "no user named 'nobody'" in nobody.output
        last = users("set-role", "budi", "reviewer")
        assert last.exit_code == 1 and "last active admin" in last.output
        assert [e["action"] for e in reviews.audit()][:6] == [
            "user_reset_password", "user_reset_password", "login", "user_activate", "user_deactivate", "login"]


def test_the_command_line_knows_the_roles_without_loading_the_database():
    from ocr.web import commands

    assert commands.ROLES == ROLES


def test_formc_serve_offers_the_three_indonesian_time_zones():
    from ocr.web import commands
    from ocr.web.local_time import ZONES

    assert commands.TIMEZONES == ZONES
    result = formc("serve", "--timezone", "Europe/Berlin")
    assert result.returncode == 2 and "Asia/Makassar" in result.stderr

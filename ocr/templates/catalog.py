"""The templates: every family and reference-image file in the `templates_forms` package, and an office's own in the
folders of FORMC_TEMPLATES (os.pathsep-separated; what `formc template learn --out` writes), loaded once.

`load_templates()` is the catalogue by id (cached for the process), `get_template(id)` one of them, and
`unavailable_templates()` the reference-image templates whose scan is not on this machine, with why.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ocr.templates.checks import TemplateError, check_unique, read_yaml
from ocr.templates.family import load_family_file
from ocr.templates.model import FormTemplate
from ocr.templates.reference_form import MissingReferenceImage, load_reference_file

TEMPLATES_ENV = "FORMC_TEMPLATES"  # folders (os.pathsep-separated) of an office's own template files


def load_template_file(path: Path) -> list[FormTemplate]:
    """The templates of one file, a family file or a reference-image file (told by its `reference_form` key)."""
    if "reference_form" in read_yaml(path, "family, ... or reference_form, ..."):
        return [load_reference_file(path)]
    return load_family_file(path)


def family_files() -> list[Path]:
    """The family files shipped in the `templates_forms` package."""
    root = resources.files("templates_forms")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml"))


def reference_files() -> list[Path]:
    """The reference-image template files shipped in `templates_forms/reference`."""
    root = resources.files("templates_forms") / "reference"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")) if root.is_dir() else []


def own_folders() -> list[Path]:
    """The folders of FORMC_TEMPLATES, in order."""
    return [Path(p) for p in os.environ.get(TEMPLATES_ENV, "").split(os.pathsep) if p]


def add_own_folder(folder: Path) -> None:
    """`folder` made, and put first in FORMC_TEMPLATES unless it is there: this process's catalogue and the readers it
    starts load the templates saved there (`formc serve --templates`)."""
    folder.mkdir(parents=True, exist_ok=True)
    if folder.resolve() not in [f.resolve() for f in own_folders()]:
        os.environ[TEMPLATES_ENV] = os.pathsep.join(map(str, [folder, *own_folders()]))
        reload_templates()


def own_files() -> list[Path]:
    """The template files (*.yaml) in the folders of FORMC_TEMPLATES, a missing folder named as a problem."""
    folders = own_folders()
    missing = [str(d) for d in folders if not d.is_dir()]
    if missing:
        raise TemplateError(TEMPLATES_ENV, [f"{d} is not a folder" for d in missing])
    return sorted(p for d in folders for p in d.glob("*.yaml"))


@lru_cache(maxsize=1)
def _reference_templates() -> tuple[tuple[FormTemplate, ...], dict[str, str]]:
    available, missing = [], {}
    for path in [*reference_files(), *own_files()]:
        try:
            available.extend(load_template_file(path))
        except MissingReferenceImage as exc:
            missing[path.stem] = "; ".join(exc.problems)
    return tuple(available), missing


def unavailable_templates() -> dict[str, str]:
    """Reference-image templates (shipped or own) whose scan is not on this machine, with why (by file name)."""
    return dict(_reference_templates()[1])


@lru_cache(maxsize=1)
def load_templates() -> dict[str, FormTemplate]:
    """Every shipped and own template whose files are all here, by id; ids and tag ids checked unique across files."""
    templates: list[FormTemplate] = []
    for path in family_files():
        templates.extend(load_family_file(path))
    templates.extend(_reference_templates()[0])
    problems: list[str] = []
    check_unique(templates, problems)
    if problems:
        raise TemplateError("templates_forms", problems)
    return {t.id: t for t in templates}


def reload_templates() -> dict[str, FormTemplate]:
    """The catalogue read again: after an own template file was saved, or FORMC_TEMPLATES changed."""
    _reference_templates.cache_clear()
    load_templates.cache_clear()
    return load_templates()


def get_template(template_id: str) -> FormTemplate:
    templates = load_templates()
    if template_id not in templates:
        raise KeyError(f"unknown template {template_id!r}; `formc template list` shows the {len(templates)} known ids")
    return templates[template_id]

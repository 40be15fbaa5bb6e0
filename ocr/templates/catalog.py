"""The shipped templates: every family and reference-image file in the `templates_forms` package, loaded once.

`load_templates()` is the catalogue by id (cached for the process), `get_template(id)` one of them, and
`unavailable_templates()` the reference-image templates whose scan is not on this machine, with why.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from ocr.templates.checks import TemplateError, check_unique, read_yaml
from ocr.templates.family import load_family_file
from ocr.templates.model import FormTemplate
from ocr.templates.reference_form import MissingReferenceImage, load_reference_file


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


@lru_cache(maxsize=1)
def _reference_templates() -> tuple[tuple[FormTemplate, ...], dict[str, str]]:
    available, missing = [], {}
    for path in reference_files():
        try:
            available.append(load_reference_file(path))
        except MissingReferenceImage as exc:
            missing[path.stem] = "; ".join(exc.problems)
    return tuple(available), missing


def unavailable_templates() -> dict[str, str]:
    """Shipped reference-image templates whose scan is not on this machine, with why (by file name)."""
    return dict(_reference_templates()[1])


@lru_cache(maxsize=1)
def load_templates() -> dict[str, FormTemplate]:
    """Every shipped template whose files are all here, by id; tag ids checked unique across families."""
    templates: list[FormTemplate] = []
    for path in family_files():
        templates.extend(load_family_file(path))
    templates.extend(_reference_templates()[0])
    problems: list[str] = []
    check_unique(templates, problems)
    if problems:
        raise TemplateError("templates_forms", problems)
    return {t.id: t for t in templates}


def get_template(template_id: str) -> FormTemplate:
    templates = load_templates()
    if template_id not in templates:
        raise KeyError(f"unknown template {template_id!r}; `formc template list` shows the {len(templates)} known ids")
    return templates[template_id]

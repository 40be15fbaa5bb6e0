"""What can be wrong with a template file: the error that lists every problem, reading the YAML, the meaning checks.

Every loader (`family.py`, `reference_form.py`, `catalog.py`) reports through `TemplateError`, each problem as
`key.path: message`; `formc template validate FILE` prints them all.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ocr.templates.model import FormTemplate, RectMM
from ocr.templates.rules import RuleSyntaxError, parse_rule


class TemplateError(ValueError):
    """A template file that cannot be used; `problems` lists every `key.path: message`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def read_yaml(path: Path, what: str) -> dict:
    """The mapping at the top of a YAML file; TemplateError when it cannot be read, parsed or is not a mapping."""
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(source, [f"cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise TemplateError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise TemplateError(source, [f"<top>: expected a mapping of keys ({what})"])
    return data


def validation_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as `key.path: message` lines."""
    return [f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()]


def check_template(template: FormTemplate, where: str, problems: list[str]) -> None:
    """Meaning checks: unique ids, everything on the page, rules that parse and name real fields."""
    width, height = template.page_size_mm

    def on_page(rect: RectMM) -> bool:
        x, y, w, h = rect
        return x >= 0 and y >= 0 and x + w <= width and y + h <= height

    seen: set[str] = set()
    for page in template.pages:
        for field in page.fields:
            if field.id in seen:
                problems.append(f"{where}: page {page.number}: duplicate field id {field.id!r}")
            seen.add(field.id)
            bubbles = [(c.centre_mm[0] - c.diameter_mm / 2, c.centre_mm[1] - c.diameter_mm / 2, c.diameter_mm,
                        c.diameter_mm) for column in (field.bubbles.columns if field.bubbles else ()) for c in column]
            for rect in (*field.boxes_mm, *bubbles):
                if not on_page(rect):
                    problems.append(f"{where}: page {page.number}: field {field.id!r} box or bubble {rect} is off the page")
        for grid in page.tally_grids:
            if not on_page(grid.rect_mm):
                problems.append(f"{where}: page {page.number}: tally grid {grid.field_id!r} is off the page")
    for i, rule in enumerate(template.rules + template.proposed_rules):
        try:
            parsed = parse_rule(rule.expr)
        except RuleSyntaxError as exc:
            problems.append(f"{where}: rules.{i}: {exc}")
            continue
        for name in sorted(parsed.direct_fields() - seen):
            problems.append(f"{where}: rules.{i}: {rule.expr!r} names unknown field {name!r}")


def check_unique(templates: list[FormTemplate], problems: list[str]) -> None:
    """Template ids and page tag ids each used once across `templates`."""
    ids: dict[str, int] = {}
    tags: dict[int, str] = {}
    for template in templates:
        if template.id in ids:
            problems.append(f"template id {template.id!r} is declared twice")
        ids[template.id] = 1
        for page in template.pages:
            if page.tag_id is None:
                continue
            other = tags.get(page.tag_id)
            if other:
                problems.append(f"tag id {page.tag_id} of {template.id} page {page.number} is also {other}")
            tags[page.tag_id] = f"{template.id} page {page.number}"

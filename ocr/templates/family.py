"""The template file format: one YAML file per form family, expanded into concrete templates.

A family file declares page layouts once (repeated rows as grids, the per-candidate block once
with a pitch) and a list of variants; a variant with `axes` is a matrix that expands into one
template per combination (election x number of candidates). Strings may hold `{placeholders}`
filled from the variant, its axes and `params`, the page (`{page}`, `{pages}`) and, inside the
per-candidate block, the column (`{col}`, `{label}`, `{n}`). Every problem is reported with the
file and the key path; `formc template validate FILE` prints them all.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from PIL import Image
from pydantic import ValidationError

from ocr.templates.file import (
    BoxRowSpec,
    BubbleSpec,
    ColumnBlockSpec,
    ColumnSpec,
    FieldGridSpec,
    FieldSpec,
    LayoutSpec,
    ReferenceFormSpec,
    RuleSpec,
    TallyGridSpec,
    TemplateFamily,
    VariantSpec,
    family_schema,
)
from ocr.templates.model import (
    Bubbles,
    Circle,
    FormTemplate,
    NumberField,
    PointMM,
    PrintedRect,
    PrintedText,
    RectMM,
    ReferenceImage,
    Rule,
    TallyGrid,
    TemplatePage,
)
from ocr.templates.rules import RuleSyntaxError, parse_rule

__all__ = ["TemplateError", "family_schema", "load_family_file", "load_reference_file", "load_templates",
           "unavailable_templates", "get_template", "expand_family"]

REFERENCE_IMAGES_ENV = "FORMC_REFERENCE_IMAGES"  # folders (os.pathsep-separated) holding reference-image scans

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class TemplateError(ValueError):
    """A template file that cannot be used; `problems` lists every `key.path: message`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class MissingReferenceImage(TemplateError):
    """A valid reference-image template whose scan is not on this machine: the template is unavailable."""


def _fill(value: Any, names: dict[str, str], where: str, problems: list[str]) -> Any:
    """Substitute `{placeholders}` in every string inside `value` (dicts and lists walked)."""
    if isinstance(value, str):
        def one(match: re.Match) -> str:
            key = match.group(1)
            if key not in names:
                problems.append(f"{where}: unknown placeholder {{{key}}} in {value!r}")
                return match.group(0)
            return names[key]
        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, dict):
        return {k: _fill(v, names, where, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names, where, problems) for v in value]
    return value


def _boxes(spec: BoxRowSpec, origin: PointMM) -> tuple[RectMM, ...]:
    w, h = spec.size_mm
    return tuple((origin[0] + i * spec.pitch_mm, origin[1], w, h) for i in range(spec.count))


def _bubbles(spec: BubbleSpec, boxes: tuple[RectMM, ...]) -> Bubbles:
    return Bubbles(columns=tuple(
        tuple(Circle(centre_mm=(x + w / 2, spec.first_centre_y_mm + d * spec.row_pitch_mm), diameter_mm=spec.diameter_mm)
              for d in range(10))
        for x, _, w, _ in boxes))


def _field(spec: FieldSpec, page: int, dy: float = 0.0) -> NumberField:
    if spec.boxes.origin_mm is None:
        raise ValueError(f"field {spec.id}: boxes.origin_mm is required")
    x, y = spec.boxes.origin_mm
    boxes = _boxes(spec.boxes, (x, y + dy))
    bubbles = None
    if spec.bubbles:
        bubbles = _bubbles(spec.bubbles.model_copy(update={"first_centre_y_mm": spec.bubbles.first_centre_y_mm + dy}), boxes)
    return NumberField(id=spec.id, page=page, label=spec.label, boxes_mm=boxes, stroke_mm=spec.boxes.stroke_mm,
                       guide=spec.boxes.guide, bubbles=bubbles)


class _PageBuilder:
    """Collects the printed elements of one page from layout specs (already placeholder-filled)."""

    def __init__(self, number: int):
        self.number = number
        self.fields: list[NumberField] = []
        self.grids: list[TallyGrid] = []
        self.rects: list[PrintedRect] = []
        self.texts: list[PrintedText] = []

    def add_printed(self, rects: list[PrintedRect], texts: list[PrintedText], dy: float = 0.0) -> None:
        for r in rects:
            x, y, w, h = r.rect_mm
            self.rects.append(r.model_copy(update={"rect_mm": (x, y + dy, w, h)}))
        for t in texts:
            self.texts.append(t.model_copy(update={"xy_mm": (t.xy_mm[0], t.xy_mm[1] + dy)}))

    def add_field(self, spec: FieldSpec, dy: float = 0.0) -> None:
        self.fields.append(_field(spec, self.number, dy))
        if spec.label and spec.label_xy_mm:
            x, y = spec.label_xy_mm
            self.texts.append(PrintedText(text=spec.label, xy_mm=(x, y + dy), size_mm=3.6, anchor="lm"))

    def add_grid(self, grid: FieldGridSpec) -> None:
        for row in grid.rows:
            for col in grid.cols:
                field_id = grid.id.replace("{grid_row}", row.key).replace("{grid_col}", col.key).strip("_")
                boxes = _boxes(grid.boxes, (col.x_mm, row.y_mm))
                self.fields.append(NumberField(id=field_id, page=self.number, label=row.label, boxes_mm=boxes,
                                               stroke_mm=grid.boxes.stroke_mm, guide=grid.boxes.guide))
            if row.label and grid.label_x_mm is not None:
                self.texts.append(PrintedText(text=row.label, xy_mm=(grid.label_x_mm, row.y_mm + grid.boxes.size_mm[1] / 2),
                                              size_mm=3.6, anchor="lm"))

    def add_tally(self, spec: TallyGridSpec, dy: float = 0.0) -> None:
        x, y = spec.origin_mm[0], spec.origin_mm[1] + dy
        cw, ch = spec.cell_mm
        self.grids.append(TallyGrid(field_id=spec.field_id, rect_mm=(x, y, cw * spec.cols, ch * spec.rows),
                                    cols=spec.cols, rows=spec.rows))
        if spec.row_sums:
            rs = spec.row_sums
            for r in range(spec.rows):
                boxes = tuple((rs.x_mm + i * rs.size_mm[0], y + r * ch, rs.size_mm[0], rs.size_mm[1]) for i in range(rs.count))
                self.fields.append(NumberField(id=f"{spec.field_id}_baris_{r + 1}", page=self.number, boxes_mm=boxes,
                                               stroke_mm=rs.stroke_mm))

    def add_layout(self, layout: LayoutSpec) -> None:
        self.add_printed(layout.rects, layout.texts)
        for spec in layout.fields:
            self.add_field(spec)
        for grid in layout.field_grids:
            self.add_grid(grid)
        for tally in layout.tally_grids:
            self.add_tally(tally)


def _columns(spec: VariantSpec) -> list[ColumnSpec]:
    if spec.columns is None:
        return []
    if isinstance(spec.columns, int):
        return [ColumnSpec(key=f"paslon_{k}", label=str(k)) for k in range(1, spec.columns + 1)]
    return [c if isinstance(c, ColumnSpec) else ColumnSpec(key=c, label=c.rsplit("_", 1)[-1]) for c in spec.columns]


def _variant_instances(variant: VariantSpec, where: str, problems: list[str]) -> list[tuple[VariantSpec, dict[str, str]]]:
    """A plain variant, or one instance per combination of its axes, with the axis values."""
    if not variant.axes:
        return [(variant, {})]
    out = []
    for combo in itertools.product(*variant.axes):
        merged: dict[str, Any] = {}
        for entry in combo:
            merged.update(entry)
        names = {k: str(v) for k, v in merged.items() if not isinstance(v, (list, dict))}
        data = variant.model_dump(exclude={"axes"})
        data = _fill(data, {**names, "page": "{page}"}, where, problems)
        if "columns" in merged:
            data["columns"] = merged["columns"]
        out.append((VariantSpec.model_validate(data), names))
    return out


def _expand_rules(specs: list[RuleSpec], columns: list[ColumnSpec], names: dict[str, str],
                  problems: list[str]) -> list[Rule]:
    rules = []
    for i, spec in enumerate(specs):
        axes = {k: ([c.key for c in columns] if v == "$columns" else v) for k, v in spec.for_each.items()}
        for combo in itertools.product(*axes.values()):
            expr = _fill(spec.expr, {**names, **dict(zip(axes, combo))}, f"rules.{i}", problems)
            rules.append(Rule(expr=expr, hard=spec.hard, tolerance=spec.tolerance, note=spec.note))
    return rules


def _check(template: FormTemplate, where: str, problems: list[str]) -> None:
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
    for i, rule in enumerate(template.rules):
        try:
            parsed = parse_rule(rule.expr)
        except RuleSyntaxError as exc:
            problems.append(f"{where}: rules.{i}: {exc}")
            continue
        for name in sorted(parsed.direct_fields() - seen):
            problems.append(f"{where}: rules.{i}: {rule.expr!r} names unknown field {name!r}")


def expand_family(family: TemplateFamily, source: str = "<family>") -> list[FormTemplate]:
    """Concrete templates of a validated family; raises TemplateError listing every problem."""
    problems: list[str] = []
    templates: list[FormTemplate] = []
    layouts_dump = {name: layout.model_dump() for name, layout in family.layouts.items()}
    header_dump = family.header.model_dump()
    for vi, variant in enumerate(family.variants):
        for instance, axis_names in _variant_instances(variant, f"variants.{vi}", problems):
            where = f"variants.{vi} ({instance.id})"
            columns = _columns(instance)
            names = {**axis_names, **instance.params, "model": instance.model,
                     "election_title": instance.election_title, "pages": str(len(instance.layouts))}
            pages = []
            for number, layout_name in enumerate(instance.layouts, start=1):
                if layout_name not in family.layouts:
                    problems.append(f"{where}: layouts.{number - 1}: unknown layout {layout_name!r} "
                                    f"(known: {', '.join(family.layouts)})")
                    continue
                # Grid placeholders pass through: the grid fills them per cell.
                page_names = {**names, "page": str(number), "grid_row": "{grid_row}", "grid_col": "{grid_col}"}
                builder = _PageBuilder(number)
                builder.add_layout(LayoutSpec.model_validate(_fill(header_dump, page_names, f"{where}: header", problems)))
                raw = _fill({k: v for k, v in layouts_dump[layout_name].items() if k != "column_block"},
                            page_names, f"{where}: layouts.{layout_name}", problems)
                builder.add_layout(LayoutSpec.model_validate(raw))
                block = layouts_dump[layout_name].get("column_block")
                if block:
                    for k, column in enumerate(columns):
                        col_names = {**page_names, "col": column.key, "label": column.label, "n": str(k + 1)}
                        spec = ColumnBlockSpec.model_validate(
                            _fill(block, col_names, f"{where}: layouts.{layout_name}.column_block", problems))
                        dy = spec.origin_y_mm + k * spec.pitch_mm
                        builder.add_printed(spec.rects, spec.texts, dy)
                        for field_spec in spec.fields:
                            builder.add_field(field_spec, dy)
                        for tally in spec.tally_grids:
                            builder.add_tally(tally, dy)
                tag_text = _fill(instance.tag_id, page_names, f"{where}: tag_id", problems)
                if not tag_text.isdigit():
                    problems.append(f"{where}: tag_id: {instance.tag_id!r} gives {tag_text!r}, not a number")
                    continue
                titles = ("MODEL", instance.model, f"Halaman {number} dari {len(instance.layouts)}")
                pages.append(TemplatePage(number=number, tag_id=int(tag_text), titles=titles,
                                          fields=tuple(builder.fields), tally_grids=tuple(builder.grids),
                                          rects=tuple(builder.rects), texts=tuple(builder.texts)))
            template = FormTemplate(
                id=instance.id, family=family.family, version=family.version,
                description=instance.description or f"{instance.model} {instance.election_title}",
                page_size_mm=family.page_size_mm, markers=family.markers, tag_rect_mm=family.tag_rect_mm,
                tag_rotation_deg=family.tag_rotation_deg,
                columns=tuple(c.key for c in columns), pages=tuple(pages),
                rules=tuple(_expand_rules(family.rules, columns, names, problems)), params=instance.params)
            _check(template, where, problems)
            templates.append(template)
    _check_unique(templates, problems)
    if problems:
        raise TemplateError(source, problems)
    return templates


def _check_unique(templates: list[FormTemplate], problems: list[str]) -> None:
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


def _format_validation(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()]


def load_family_file(path: Path | str) -> list[FormTemplate]:
    """Parse, validate and expand one family file; TemplateError names the file and each bad key."""
    path = Path(path)
    source = str(path)
    data = _read_yaml(path, "family, version, layouts, variants, ...")
    try:
        family = TemplateFamily.model_validate(data)
    except ValidationError as exc:
        raise TemplateError(source, _format_validation(exc)) from exc
    return expand_family(family, source)


def _read_yaml(path: Path, what: str) -> dict:
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


def reference_image_dirs(path: Path) -> list[Path]:
    """Where a reference file's scans are looked for: beside it, then each folder of FORMC_REFERENCE_IMAGES."""
    extra = [Path(p) for p in os.environ.get(REFERENCE_IMAGES_ENV, "").split(os.pathsep) if p]
    return [path.parent, *extra]


def load_reference_file(path: Path | str) -> FormTemplate:
    """One reference-image template: boxes given in the scan's px (x, y) become page mm through `px_per_mm`.
    MissingReferenceImage when no folder holds a file of the stated name and sha256."""
    path = Path(path)
    source = str(path)
    try:
        spec = ReferenceFormSpec.model_validate(_read_yaml(path, "reference_form, pages, rules"))
    except ValidationError as exc:
        raise TemplateError(source, _format_validation(exc)) from exc
    pages, problems, size_mm = [], [], None
    folders = reference_image_dirs(path)
    for page in spec.pages:
        found = [d / page.image for d in folders if (d / page.image).is_file()]
        image = next((p for p in found if hashlib.sha256(p.read_bytes()).hexdigest() == page.sha256), None)
        if image is None:
            why = "has another sha256" if found else "is not found"
            where = ", ".join(map(str, folders))
            raise MissingReferenceImage(source, [f"page {page.number}: reference image {page.image} {why} (looked in "
                                                 f"{where}; set {REFERENCE_IMAGES_ENV})"])
        with Image.open(image) as im:
            width_px, height_px = im.size
        size_mm = size_mm or (width_px / page.px_per_mm, height_px / page.px_per_mm)
        fields = []
        for f in page.fields:
            boxes = tuple(tuple(v / page.px_per_mm for v in rect) for rect in f.rects_px())
            fields.append(NumberField(id=f.id, page=page.number, label=f.label, boxes_mm=boxes,
                                      stroke_mm=f.stroke_px / page.px_per_mm))
        reference = ReferenceImage(path=image, sha256=page.sha256, px_per_mm=page.px_per_mm)
        pages.append(TemplatePage(number=page.number, reference=reference, titles=tuple(page.titles), fields=tuple(fields)))
    template = FormTemplate(id=spec.reference_form, family=spec.reference_form, version=spec.version,
                            description=spec.description, page_size_mm=size_mm, columns=(), pages=tuple(pages),
                            rules=tuple(_expand_rules(spec.rules, [], {}, problems)))
    _check(template, source, problems)
    if problems:
        raise TemplateError(source, problems)
    return template


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
    _check_unique(templates, problems)
    if problems:
        raise TemplateError("templates_forms", problems)
    return {t.id: t for t in templates}


def get_template(template_id: str) -> FormTemplate:
    templates = load_templates()
    if template_id not in templates:
        raise KeyError(f"unknown template {template_id!r}; `formc template list` shows the {len(templates)} known ids")
    return templates[template_id]

"""The template file format: one YAML file per form family, expanded into concrete templates.

A family file declares page layouts once (repeated rows as grids, the per-candidate block once
with a pitch) and a list of variants; a variant with `axes` is a matrix that expands into one
template per combination (election x number of candidates). Strings may hold `{placeholders}`
filled from the variant, its axes and `params`, the page (`{page}`, `{pages}`) and, inside the
per-candidate block, the column (`{col}`, `{label}`, `{n}`). Every problem is reported with the
file and the key path; `formc template validate FILE` prints them all.

Reference-image templates are read by `reference_form.py`, the shipped catalogue by `catalog.py`, the
checks every loader shares live in `checks.py`.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ocr.templates.checks import TemplateError, check_template, check_unique, read_yaml, validation_problems
from ocr.templates.file import (
    BoxRowSpec,
    BubbleSpec,
    ColumnBlockSpec,
    ColumnSpec,
    FieldGridSpec,
    FieldSpec,
    LayoutSpec,
    RuleSpec,
    TallyGridSpec,
    TemplateFamily,
    VariantSpec,
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
    Rule,
    TallyGrid,
    TemplatePage,
)

__all__ = ["TemplateError", "load_family_file", "expand_family", "expand_rules"]

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


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
                label = f"{row.label}, {col.label}" if row.label and col.label else row.label or col.label
                self.fields.append(NumberField(id=field_id, page=self.number, label=label, boxes_mm=boxes,
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
            # Named after the field the grid tallies ("Jumlah suara sah (1), baris 2") when it is on this page.
            total = next((f.label for f in self.fields if f.id == spec.field_id and f.label), "")
            for r in range(spec.rows):
                boxes = tuple((rs.x_mm + i * rs.size_mm[0], y + r * ch, rs.size_mm[0], rs.size_mm[1]) for i in range(rs.count))
                label = f"{total}, baris {r + 1}" if total else f"Jumlah tiap baris {r + 1}"
                self.fields.append(NumberField(id=f"{spec.field_id}_baris_{r + 1}", page=self.number, label=label,
                                               boxes_mm=boxes, stroke_mm=rs.stroke_mm))

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


def expand_rules(specs: list[RuleSpec], columns: list[ColumnSpec], names: dict[str, str],
                  problems: list[str]) -> list[Rule]:
    rules = []
    for i, spec in enumerate(specs):
        axes = {k: ([c.key for c in columns] if v == "$columns" else v) for k, v in spec.for_each.items()}
        for combo in itertools.product(*axes.values()):
            expr = _fill(spec.expr, {**names, **dict(zip(axes, combo))}, f"rules.{i}", problems)
            rules.append(Rule(expr=expr, hard=spec.hard, tolerance=spec.tolerance, note=spec.note))
    return rules


def _add_column_blocks(builder: _PageBuilder, block: dict, columns: list[ColumnSpec], page_names: dict[str, str],
                       where: str, problems: list[str]) -> None:
    """The per-candidate block of a layout, once per column, each `pitch_mm` below the one before."""
    for k, column in enumerate(columns):
        col_names = {**page_names, "col": column.key, "label": column.label, "n": str(k + 1)}
        spec = ColumnBlockSpec.model_validate(_fill(block, col_names, where, problems))
        dy = spec.origin_y_mm + k * spec.pitch_mm
        builder.add_printed(spec.rects, spec.texts, dy)
        for field_spec in spec.fields:
            builder.add_field(field_spec, dy)
        for tally in spec.tally_grids:
            builder.add_tally(tally, dy)


def _page(layouts_dump: dict[str, dict], header_dump: dict, instance: VariantSpec, columns: list[ColumnSpec],
          names: dict[str, str], number: int, layout_name: str, where: str, problems: list[str]) -> TemplatePage | None:
    """Page `number` of a variant instance, laid out by `layout_name`; None (the problem noted) when it cannot be."""
    if layout_name not in layouts_dump:
        problems.append(f"{where}: layouts.{number - 1}: unknown layout {layout_name!r} "
                        f"(known: {', '.join(layouts_dump)})")
        return None
    # Grid placeholders pass through: the grid fills them per cell.
    page_names = {**names, "page": str(number), "grid_row": "{grid_row}", "grid_col": "{grid_col}"}
    builder = _PageBuilder(number)
    builder.add_layout(LayoutSpec.model_validate(_fill(header_dump, page_names, f"{where}: header", problems)))
    raw = _fill({k: v for k, v in layouts_dump[layout_name].items() if k != "column_block"},
                page_names, f"{where}: layouts.{layout_name}", problems)
    builder.add_layout(LayoutSpec.model_validate(raw))
    block = layouts_dump[layout_name].get("column_block")
    if block:
        _add_column_blocks(builder, block, columns, page_names, f"{where}: layouts.{layout_name}.column_block", problems)
    tag_text = _fill(instance.tag_id, page_names, f"{where}: tag_id", problems)
    if not tag_text.isdigit():
        problems.append(f"{where}: tag_id: {instance.tag_id!r} gives {tag_text!r}, not a number")
        return None
    titles = ("MODEL", instance.model, f"Halaman {number} dari {len(instance.layouts)}")
    return TemplatePage(number=number, tag_id=int(tag_text), titles=titles,
                        fields=tuple(builder.fields), tally_grids=tuple(builder.grids),
                        rects=tuple(builder.rects), texts=tuple(builder.texts))


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
            pages = [_page(layouts_dump, header_dump, instance, columns, names, number, layout_name, where, problems)
                     for number, layout_name in enumerate(instance.layouts, start=1)]
            template = FormTemplate(
                id=instance.id, family=family.family, version=family.version,
                description=instance.description or f"{instance.model} {instance.election_title}",
                page_size_mm=family.page_size_mm, markers=family.markers, tag_rect_mm=family.tag_rect_mm,
                tag_rotation_deg=family.tag_rotation_deg,
                columns=tuple(c.key for c in columns), pages=tuple(p for p in pages if p is not None),
                rules=tuple(expand_rules([r for r in family.rules if not r.proposed], columns, names, problems)),
                proposed_rules=tuple(expand_rules([r for r in family.rules if r.proposed], columns, names, problems)),
                params=instance.params)
            check_template(template, where, problems)
            templates.append(template)
    check_unique(templates, problems)
    if problems:
        raise TemplateError(source, problems)
    return templates


def load_family_file(path: Path | str) -> list[FormTemplate]:
    """Parse, validate and expand one family file; TemplateError names the file and each bad key."""
    path = Path(path)
    source = str(path)
    data = read_yaml(path, "family, version, layouts, variants, ...")
    try:
        family = TemplateFamily.model_validate(data)
    except ValidationError as exc:
        raise TemplateError(source, validation_problems(exc)) from exc
    return expand_family(family, source)

"""Concrete form templates: what is printed on each page, in page millimetres.

Geometry convention everywhere in formc: millimetres from the page's top-left corner, x to the
right, y down; a rectangle is `(x, y, w, h)`. A box rectangle is the centre line of its printed
frame. Templates are data: they are expanded from the family files in `templates_forms/` by
`ocr.templates.family` and never written in code.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ocr.templates.rules import Comparison, parse_rule

RectMM = tuple[float, float, float, float]
PointMM = tuple[float, float]
PointPX = tuple[float, float]  # image px, x right, y down
DIGIT_LABELS = tuple(str(d) for d in range(10))


def rect_corners(rect_mm: RectMM) -> np.ndarray:
    """(4, 2) corners of a rectangle (x, y, w, h), in the order TL, TR, BR, BL."""
    x, y, w, h = rect_mm
    return np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], np.float64)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Markers(Frozen):
    """Four 2x2 checker blocks (two black squares on the main diagonal) near the page corners."""

    square_mm: float = Field(gt=0, description="side of one black square")
    blocks_mm: tuple[PointMM, PointMM, PointMM, PointMM] = Field(
        description="top-left corner of each checker block, order TL, TR, BR, BL")

    def centres_mm(self) -> list[PointMM]:
        """Checker point (where the two squares touch) of each block, TL, TR, BR, BL."""
        return [(x + self.square_mm, y + self.square_mm) for x, y in self.blocks_mm]


class Circle(Frozen):
    centre_mm: PointMM
    diameter_mm: float


class Bubbles(Frozen):
    """OMR bubbles under a field's boxes: one column per box, one bubble per digit 0..9."""

    columns: tuple[tuple[Circle, ...], ...]


class NumberField(Frozen):
    """A handwritten number written digit by digit into boxes, right aligned."""

    id: str
    page: int
    label: str = ""
    boxes_mm: tuple[RectMM, ...]
    stroke_mm: float = 1.06
    guide: Literal["none", "seven_segment"] = "none"
    bubbles: Bubbles | None = None


class TallyGrid(Frozen):
    """Cells for tally strokes (turus); row r's count is written in field `<field_id>_baris_<r>`."""

    field_id: str
    rect_mm: RectMM
    cols: int
    rows: int

    @property
    def row_field_ids(self) -> tuple[str, ...]:
        """The fields holding each row's written count, top to bottom."""
        return tuple(f"{self.field_id}_baris_{r}" for r in range(1, self.rows + 1))

    def cells_mm(self) -> tuple[tuple[RectMM, ...], ...]:
        """(x, y, w, h) page mm of every cell, row by row, each row left to right."""
        x, y, w, h = self.rect_mm
        cell_w, cell_h = w / self.cols, h / self.rows
        return tuple(tuple((x + c * cell_w, y + r * cell_h, cell_w, cell_h) for c in range(self.cols))
                     for r in range(self.rows))


class PrintedRect(Frozen):
    rect_mm: RectMM
    stroke_mm: float = 0.5
    fill: bool = False


class PrintedText(Frozen):
    text: str
    xy_mm: PointMM
    size_mm: float = 4.0
    anchor: str = Field("la", description="Pillow text anchor: 'la' left/top, 'mm' centred, ...")
    rotate: int = 0
    bold: bool = False


class ReferenceImage(Frozen):
    """A scan of the page on which the template's boxes were measured: pages with no markers or tag (older
    forms) are aligned to it by feature matching. Its pixels map to page mm by `px_per_mm` (x, y alike)."""

    path: Path
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the image file: the boxes belong to these pixels")
    px_per_mm: float = Field(gt=0)
    # A photo of a sheet printed without markers: the scan is the photo (its EXIF turn applied) flattened, these
    # page corners TL, TR, BR, BL (photo px, x y) to a rectangle of `flattened_size_px` (w, h).
    flattened_corners_px: tuple[PointPX, PointPX, PointPX, PointPX] | None = None
    flattened_size_px: tuple[int, int] | None = None


class TemplatePage(Frozen):
    number: int
    tag_id: int | None = Field(None, description="page tag id; None on a reference-image page")
    reference: ReferenceImage | None = None
    titles: tuple[str, ...] = Field(description="printed title lines that identify the page without its tag")
    fields: tuple[NumberField, ...]
    tally_grids: tuple[TallyGrid, ...] = ()
    rects: tuple[PrintedRect, ...] = ()
    texts: tuple[PrintedText, ...] = ()


class Rule(Frozen):
    expr: str
    hard: bool = True
    tolerance: float = 0.0
    note: str = ""

    @cached_property
    def parsed(self) -> Comparison:
        return parse_rule(self.expr)

    def holds(self, values: dict[str, int]) -> bool:
        return self.parsed.holds(values, self.tolerance)


class FormTemplate(Frozen):
    """One concrete form (one election, one number of vote columns) with all its pages."""

    id: str
    family: str
    version: int
    description: str
    page_size_mm: tuple[float, float] = Field(description="(width, height)")
    markers: Markers | None = Field(None, description="None: a reference-image template (every page has `reference`)")
    tag_family: Literal["tag36h10"] = "tag36h10"
    tag_rect_mm: RectMM | None = None
    tag_rotation_deg: Literal[0, 90, 180, 270] = Field(
        0, description="counter-clockwise turn of the printed tag; the official 2024 planos print it turned 180")
    columns: tuple[str, ...] = Field(description="vote columns on the votes page: paslon_1, ..., kolom_kosong")
    pages: tuple[TemplatePage, ...]
    rules: tuple[Rule, ...]
    proposed_rules: tuple[Rule, ...] = Field(
        (), description="rules `formc template learn` suggested and no person has accepted yet: never checked")
    params: dict[str, str] = {}

    @model_validator(mode="after")
    def _located_somehow(self) -> FormTemplate:
        printed = self.markers is not None and self.tag_rect_mm is not None and all(p.tag_id is not None for p in self.pages)
        if not printed and not all(p.reference is not None for p in self.pages):
            raise ValueError("a template needs markers, a tag rectangle and page tag ids, or a reference image on every page")
        return self

    @property
    def by_reference(self) -> bool:
        """Aligned by feature matching against reference images, not by printed markers and tag."""
        return self.markers is None

    def page(self, number: int) -> TemplatePage:
        for page in self.pages:
            if page.number == number:
                return page
        raise KeyError(f"template {self.id} has no page {number} (pages: {[p.number for p in self.pages]})")

    def failed_rules(self, values: dict[str, int], hard_only: bool = False) -> list[Rule]:
        """Rules broken by `values`; a rule reading a field absent from `values` is not judged."""
        failed = []
        for rule in self.rules:
            if hard_only and not rule.hard:
                continue
            if rule.parsed.field_ids(self.fields) <= values.keys() and not rule.holds(values):
                failed.append(rule)
        return failed

    @cached_property
    def fields(self) -> dict[str, NumberField]:
        """Every numeric field of every page, by field id."""
        return {f.id: f for p in self.pages for f in p.fields}

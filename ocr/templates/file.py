"""The template file format: the pydantic models of one YAML family file (what `formc template schema` prints).

Units are millimetres from the page's top-left corner, x right, y down; rectangles (x, y, w, h).
`ocr.templates.family` validates a file against these models and expands it into concrete templates.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ocr.templates.model import Markers, PointMM, PrintedRect, PrintedText, RectMM


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoxRowSpec(Spec):
    count: int = Field(ge=1, le=8, description="number of digit boxes")
    origin_mm: PointMM | None = Field(None, description="top-left of the first box; grids give it per cell")
    size_mm: tuple[float, float] = Field(description="(width, height) of one box")
    pitch_mm: float = Field(gt=0, description="x distance from one box's left edge to the next's")
    stroke_mm: float = 1.06
    guide: Literal["none", "seven_segment"] = "none"


class BubbleSpec(Spec):
    """A column of ten bubbles (0..9) centred under each box."""

    first_centre_y_mm: float = Field(description="y of the centre of bubble 0")
    diameter_mm: float = Field(gt=0)
    row_pitch_mm: float = Field(gt=0)


class FieldSpec(Spec):
    id: str = Field(pattern=r"^[a-z0-9_{}]+$")
    label: str = Field("", description="the field's name as the form prints it (shown to people); drawn at label_xy_mm "
                       "when that is given")
    label_xy_mm: PointMM | None = None
    boxes: BoxRowSpec
    bubbles: BubbleSpec | None = None


class GridRow(Spec):
    key: str
    y_mm: float
    label: str = ""


class GridCol(Spec):
    key: str
    x_mm: float
    label: str = Field("", description="the column's heading as people read it; a field's label is its row's, then this")


class FieldGridSpec(Spec):
    """Rows x columns of fields with the same boxes; ids made from `id` ('{grid_row}_{grid_col}')."""

    id: str = "{grid_row}_{grid_col}"
    rows: list[GridRow]
    cols: list[GridCol]
    boxes: BoxRowSpec
    label_x_mm: float | None = None


class RowSumSpec(Spec):
    x_mm: float
    size_mm: tuple[float, float]
    count: int = 2
    stroke_mm: float = 0.53


class TallyGridSpec(Spec):
    field_id: str
    origin_mm: PointMM
    cell_mm: tuple[float, float]
    cols: int = Field(ge=1)
    rows: int = Field(ge=1)
    row_sums: RowSumSpec | None = Field(None, description="boxes for each row's count: fields <field_id>_baris_<r>")


class ColumnBlockSpec(Spec):
    """Drawn once per vote column, `pitch_mm` apart; y inside it is relative to `origin_y_mm`."""

    origin_y_mm: float
    pitch_mm: float = Field(gt=0)
    fields: list[FieldSpec] = []
    tally_grids: list[TallyGridSpec] = []
    rects: list[PrintedRect] = []
    texts: list[PrintedText] = []


class LayoutSpec(Spec):
    rects: list[PrintedRect] = []
    texts: list[PrintedText] = []
    fields: list[FieldSpec] = []
    field_grids: list[FieldGridSpec] = []
    tally_grids: list[TallyGridSpec] = []
    column_block: ColumnBlockSpec | None = None


class RuleSpec(Spec):
    expr: str
    hard: bool = True
    tolerance: float = Field(0.0, ge=0)
    note: str = ""
    proposed: bool = Field(False, description="suggested by `formc template learn` from the layout; not checked "
                           "until a person accepts it (deletes this key, or accepts it in the web app's template editor)")
    for_each: dict[str, Union[list[str], Literal["$columns"]]] = Field(
        {}, description="expand the rule once per value; '$columns' is the variant's vote columns")


class ColumnSpec(Spec):
    key: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str


class VariantSpec(Spec):
    id: str
    description: str = ""
    model: str = Field(description="form name printed in the title box, e.g. C.HASIL-KWK")
    election_title: str
    layouts: list[str] = Field(min_length=1, description="layout name of each page, in page order")
    tag_id: str = Field(description="page tag id, e.g. '10{page}' or '{election_tag}{ballot_tag}{page}'")
    columns: Union[int, list[Union[str, ColumnSpec]], None] = Field(
        None, description="vote columns: N for paslon_1..N, or a list of keys / {key, label}")
    params: dict[str, str] = {}
    axes: list[list[dict[str, Any]]] = Field(
        [], description="matrix: one template per combination of one entry from each axis")


class TemplateFamily(Spec):
    family: str
    version: int = Field(ge=1)
    description: str = ""
    source: str = ""
    page_size_mm: tuple[float, float]
    markers: Markers
    tag_rect_mm: RectMM
    tag_rotation_deg: Literal[0, 90, 180, 270] = 0
    header: LayoutSpec = Field(LayoutSpec(), description="drawn on every page")
    layouts: dict[str, LayoutSpec]
    rules: list[RuleSpec] = []
    variants: list[VariantSpec] = Field(min_length=1)
    edited_by_person: list[str] = Field([], description="what a person changed or wrote in the web app's template "
                                        "editor after `formc template learn` proposed the file: fields, rules")


class BoxEdgesSpec(Spec):
    """A row of boxes that share their side lines, by the centre lines of its printed frame in reference px."""

    x: list[float] = Field(min_length=2, max_length=9, description="x of each vertical line, left to right (n boxes: n + 1)")
    y: tuple[float, float] = Field(description="y of the top and the bottom line")


class ReferenceFieldSpec(Spec):
    """A number's boxes in reference px: a row sharing side lines (`box_edges_px`) or separate boxes (`boxes_px`)."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str = ""
    box_edges_px: BoxEdgesSpec | None = None
    boxes_px: list[tuple[float, float, float, float]] | None = Field(None, description="(x, y, w, h) of each box")
    stroke_px: float = Field(2.0, gt=0, description="width of the printed frame lines")

    @model_validator(mode="after")
    def _one_way(self) -> ReferenceFieldSpec:
        if (self.box_edges_px is None) == (self.boxes_px is None):
            raise ValueError(f"field {self.id}: give either box_edges_px or boxes_px")
        return self

    def rects_px(self) -> list[tuple[float, float, float, float]]:
        if self.boxes_px is not None:
            return list(self.boxes_px)
        xs, (top, bottom) = self.box_edges_px.x, self.box_edges_px.y
        return [(a, top, b - a, bottom - top) for a, b in zip(xs, xs[1:])]


class FlattenedSpec(Spec):
    """The image is a photo of a sheet without markers: the scan the boxes are measured on is it flattened."""

    corners_px: tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]] = Field(
        description="the page's corners TL, TR, BR, BL in the photo (px, x y, its EXIF turn applied)")
    size_px: tuple[int, int] = Field(description="the flattened scan's width and height, px")


class ReferencePageSpec(Spec):
    number: int = Field(ge=1)
    image: str = Field(description="file name of the scan the boxes were measured on (found beside this file or in "
                                   "a folder of FORMC_REFERENCE_IMAGES)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    px_per_mm: float = Field(gt=0, description="scale of the scan: its pixels per page mm")
    flattened: FlattenedSpec | None = Field(None, description="set when the image is a photo: the scan is it flattened "
                                            "(`formc template learn --page-mm`)")
    titles: list[str] = []
    fields: list[ReferenceFieldSpec] = Field(min_length=1)


class ReferenceFormSpec(Spec):
    """A form without markers or tag (older C1 forms): each page a scan plus its boxes in the scan's pixels."""

    reference_form: str = Field(pattern=r"^[a-z0-9-]+$", description="template id")
    version: int = Field(ge=1)
    description: str = ""
    source: str = ""
    pages: list[ReferencePageSpec] = Field(min_length=1)
    rules: list[RuleSpec] = []
    edited_by_person: list[str] = Field([], description="what a person changed or wrote in the web app's template "
                                        "editor after `formc template learn` proposed the file: fields, rules")


def family_schema() -> dict:
    """JSON Schema of the family file format."""
    return TemplateFamily.model_json_schema()

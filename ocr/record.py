"""The result of reading one submission: one pydantic model family for the CLI, JSONL, the database and the web app.

`formc schema` prints its JSON Schema. A result is data only (no photos, no arrays): what is
published, reviewed and stored. It carries the page geometry (each page's homography and every
box's corners in page mm), so that previews and review images are drawn from the record, the
template and the photo alone; and `reader_version`, the model and template versions that read it.
`ocr/pipeline.py` makes it from what the stages read.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ocr.reader.digits import SHIPPED, weights_sha256
from ocr.reader.reasons import FindingCode, ReasonCode
from ocr.reader.tally import TALLY_WEIGHTS
from ocr.templates.model import FormTemplate

SubmissionStatus = Literal["ok", "review", "incomplete", "rejected", "error"]
SUBMISSION_STATUSES: tuple[str, ...] = get_args(SubmissionStatus)  # in the order summaries list them
FieldStatus = Literal["ok", "corrected", "review", "unreadable"]
SCHEMA_VERSION = 5  # 2: typed reasons, reader_version, page geometry; 3: tally counts; 4: page hashes; 5: TPS identity
Election = Literal["gubernur", "bupati", "walikota", "presiden"]
ELECTIONS: tuple[str, ...] = get_args(Election)
DESA_CODE = r"^\d{10}$"  # Kemendagri kelurahan/desa code without dots: 2 province, 2 kabupaten/kota, 2 kecamatan, 4 desa


class Reason(BaseModel):
    """Why: a code for programs (a refusal's ReasonCode or a finding's FindingCode) and a detail for people."""

    code: ReasonCode | FindingCode = Field(description="refusal codes (a photo or page not read) and finding codes "
                                                       "(what the verdict found about a field or the rules)")
    detail: str = Field("", description="the rule, margin, value or photo the code is about")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: object) -> object:
        """Records of schema 1 wrote a reason as text, `code: detail`: still read (resumed batches, old rows)."""
        if isinstance(data, str):
            code, _, detail = data.partition(": ")
            return {"code": code, "detail": detail}
        return data

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else str(self.code)


class ErrorRecord(BaseModel):
    code: ReasonCode = Field(description="reason code (ocr/reader/reasons.py), e.g. too_blurry, not_an_image")
    message: str = Field(description="what happened and what to do, for a person")


class PageQuality(BaseModel):
    markers_found: int = Field(description="corner markers used, of 4 (0: aligned to a reference-image template)")
    tag_read: bool
    residual_mm: float = Field(description="tag corners against the markers' homography, mm; for a reference-image "
                                           "match the median feature reprojection distance")
    page_fraction: float = Field(description="share of the photo covered by the page")
    sharpness: float = Field(description="darkness of the printed box frames, 0..1")
    paper_level: int = Field(description="brightness of the paper, 0..255")
    boxes_seen: float = Field(description="share of big boxes whose printed lines were found")
    inlier_ratio: float | None = Field(None, description="reference-image match: share of feature matches that agree "
                                                          "with its homography")


class BoxPlace(BaseModel):
    field_id: str
    index: int = Field(description="the box's place in its field, 0 = leftmost")
    corners_mm: list[list[float]] = Field(description="TL, TR, BR, BL as (x, y) page mm from the page's top-left, "
                                                      "where the page homography sees them (the sheet's bend undone)")
    placed: bool = Field(description="found on its own printed lines, all four edges checked; false: its read is "
                                     "flagged box_not_placed")


class PageGeometry(BaseModel):
    page_homography: list[list[float]] = Field(description="(3, 3): page mm (x, y) -> photo px (x, y)")
    photo_size_px: tuple[int, int] = Field(description="(width, height) of the decoded photo, EXIF orientation applied")
    boxes: list[BoxPlace]


class PageResult(BaseModel):
    source: str = Field(description="the photo's name as given (path, zip member or upload name)")
    sha256: str = Field(description="of the photo's bytes")
    page: int | None = Field(description="page number of the template, when identified")
    status: Literal["read", "refused"]
    quality: PageQuality | None = None
    errors: list[ErrorRecord] = Field(default_factory=list)
    geometry: PageGeometry | None = Field(None, description="where the template's boxes lie in the photo (read pages)")
    photo_hash: str | None = Field(None, description="perceptual hash of the page's handwriting as aligned, 64 hex "
                                                     "digits (256 bits; ocr/reader/page_hash.py): the same sheet "
                                                     "photographed again differs in few bits; None: not aligned, or "
                                                     "read before schema 4")


class DigitRead(BaseModel):
    label: str = Field(description="the box's most probable class: 0-9, X, - or blank")
    p: float


class Alternative(BaseModel):
    value: int
    p: float = Field(description="probability of this value from the field's own boxes")


class TallyCount(BaseModel):
    """What the tally marks of a row say about its written sum (the fields `<column>_baris_<r>`)."""

    status: Literal["counted", "struck", "none"] = Field(
        description="counted: marks counted; struck: the row struck out as unused (its sum is 0); none: the grid "
                    "holds no mark at all, so it is no evidence")
    count: int | None = Field(description="marks counted (60, a full row, may stand for more); 0 when struck; "
                                          "None when there is no evidence")
    p: float = Field(description="probability of `count` (1 for a struck row)")
    cells: list[str] = Field(default_factory=list, description="per cell, left to right: '0'..'5' marks or 'struck'")


class FieldResult(BaseModel):
    value: int | None
    confidence: float = Field(description="P(value) against its runner-up under the rules, 0..1; the runner-up is "
                                          "searched only as far as a status depends on it (the policy's corrected "
                                          "margin, 5 nats), so any surer value shows 0.993")
    status: FieldStatus
    reasons: list[Reason] = Field(default_factory=list)
    read_value: int | None = Field(default=None, description="the field's own most probable value before the rules: "
                                                             "its boxes, with its row's tally marks where it has any")
    digits: list[DigitRead] = Field(default_factory=list, description="per box, left to right")
    alternatives: list[Alternative] = Field(default_factory=list)
    page: int
    tally: TallyCount | None = Field(default=None, description="a row sum's tally marks; None for other fields")


class RuleCheck(BaseModel):
    rule: str
    ok: bool
    hard: bool


class ReaderVersion(BaseModel):
    formc: str = Field(description="the formc package version")
    model: str = Field(description="sha256 of the digit model's weights, first 12 hex digits")
    tally_model: str = Field("", description="sha256 of the tally cell model's weights, first 12 hex digits; empty "
                                             "when formc shipped none (records before schema 3)")
    templates: dict[str, int] = Field(default_factory=dict, description="template id -> version, of the templates read")


class TpsIdentity(BaseModel):
    """Where a result belongs: a TPS of a kelurahan/desa, in one election. The higher levels are the desa code's
    prefixes (2, 4, 6 digits), named by the region registry (`ocr/db/regions.py`)."""

    model_config = ConfigDict(frozen=True)  # hashable, as the frozen SubmissionInput that carries it

    desa: str = Field(pattern=DESA_CODE, description="Kemendagri kelurahan/desa code, 10 digits without dots "
                                                     "(3204052001: province 32, kabupaten 3204, kecamatan 320405)")
    tps: int = Field(ge=1, description="the TPS number within the kelurahan/desa")
    election: Election = Field(description="the election the form counts")


class SubmissionResult(BaseModel):
    schema_version: int = Field(1, description="of this record's format (1: before typed reasons; missing = 1)")
    reader_version: ReaderVersion | None = None
    submission: str = Field(description="the caller's name for the submission (the TPS folder, a manifest id)")
    place: TpsIdentity | None = Field(None, description="the TPS and election, when the submission named them "
                                                        "(manifest columns, folder layout, upload pickers; schema 5)")
    photos_key: str = Field(description="sha256 over the photos' sha256s, sorted: the same photos give the same key")
    template: str | None
    status: SubmissionStatus
    reasons: list[Reason] = Field(default_factory=list)
    pages: list[PageResult]
    fields: dict[str, FieldResult] = Field(default_factory=dict)
    checks: list[RuleCheck] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict, description=(
        "ms each stage took for the whole submission: decode, align (locate, identify, refine), cut (boxes cut and "
        "cleaned, OMR bubbles, page hash), classify (a doubtful form's second look included), tally, decode_rules "
        "(candidates, joint decoding, verdict; both decodings of a form given a second look)"))


def photos_key(photo_hashes: list[str], sources: list[str]) -> str:
    """Content key of a submission: independent of names and order, so a resumed batch recognises its work. A photo
    that could not be loaded (empty hash) counts by its source name, so that two submissions of only such photos
    do not share a key (and a database row)."""
    parts = [sha or f"unloaded:{source}" for sha, source in zip(photo_hashes, sources, strict=True)]
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


@lru_cache(maxsize=1)
def _package_version() -> str:
    try:
        return version("formc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "source"


def reader_version(templates: tuple[FormTemplate, ...] = (), model: str = "") -> ReaderVersion:
    """What read a submission: the package, the digit model (its weights' sha256, 12 hex digits; default the
    shipped model's), the shipped tally model and the versions of `templates`."""
    return ReaderVersion(formc=_package_version(), model=model or weights_sha256()[:12],
                         tally_model=weights_sha256(SHIPPED, TALLY_WEIGHTS)[:12],
                         templates={t.id: t.version for t in templates})


def error_result(submission: str, sources: list[str], photo_hashes: list[str], code: ReasonCode,
                 message: str, status: SubmissionStatus = "error") -> SubmissionResult:
    """The record of a submission the pipeline failed on (a bug or a crashed worker), or (`rejected`) did not read
    for a reason of the whole submission (its place): kept, never dropped."""
    pages = [PageResult(source=s, sha256=h, page=None, status="refused", errors=[ErrorRecord(code=code, message=message)])
             for s, h in zip(sources, photo_hashes)]
    return SubmissionResult(schema_version=SCHEMA_VERSION, reader_version=reader_version(), submission=submission,
                            photos_key=photos_key(photo_hashes, sources), template=None, status=status,
                            reasons=[Reason(code=code, detail=message)], pages=pages)

"""The result of reading one submission: one pydantic model family for the CLI, JSONL, the database and the web app.

`formc schema` prints its JSON Schema. A result is data only (no photos, no arrays): what is
published, reviewed and stored. `submission_result` turns the pipeline's `SubmissionRead` into it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, Field

from ocr.reader.digits import CLASSES
from ocr.templates.family import get_template
from ocr.pipeline import SubmissionRead

SubmissionStatus = Literal["ok", "review", "rejected", "error"]
FieldStatus = Literal["ok", "corrected", "review", "unreadable"]
ALTERNATIVES = 3  # values a reviewer is offered beside the chosen one


class ErrorRecord(BaseModel):
    code: str = Field(description="reason code (ocr/reader/reasons.py), e.g. too_blurry, not_an_image, internal_error")
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


class PageResult(BaseModel):
    source: str = Field(description="the photo's name as given (path, zip member or upload name)")
    sha256: str = Field(description="of the photo's bytes")
    page: int | None = Field(description="page number of the template, when identified")
    status: Literal["read", "refused"]
    quality: PageQuality | None = None
    errors: list[ErrorRecord] = Field(default_factory=list)


class DigitRead(BaseModel):
    label: str = Field(description="the box's most probable class: 0-9, X, - or blank")
    p: float


class Alternative(BaseModel):
    value: int
    p: float = Field(description="probability of this value from the field's own boxes")


class FieldResult(BaseModel):
    value: int | None
    confidence: float = Field(description="P(value) against its runner-up under the rules, 0..1")
    status: FieldStatus
    reasons: list[str] = Field(default_factory=list)
    read_value: int | None = Field(default=None, description="the boxes' own most probable value, before the rules")
    digits: list[DigitRead] = Field(default_factory=list, description="per box, left to right")
    alternatives: list[Alternative] = Field(default_factory=list)
    page: int


class RuleCheck(BaseModel):
    rule: str
    ok: bool
    hard: bool


class SubmissionResult(BaseModel):
    submission: str = Field(description="the caller's name for the submission (the TPS folder, a manifest id)")
    photos_key: str = Field(description="sha256 over the photos' sha256s, sorted: the same photos give the same key")
    template: str | None
    status: SubmissionStatus
    reasons: list[str] = Field(default_factory=list)
    pages: list[PageResult]
    fields: dict[str, FieldResult] = Field(default_factory=dict)
    checks: list[RuleCheck] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)


def photos_key(photo_hashes: list[str], sources: list[str]) -> str:
    """Content key of a submission: independent of names and order, so a resumed batch recognises its work. A photo
    that could not be loaded (empty hash) counts by its source name, so that two submissions of only such photos
    do not share a key (and a database row)."""
    parts = [sha or f"unloaded:{source}" for sha, source in zip(photo_hashes, sources, strict=True)]
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def _finite(x: float) -> float:
    return round(float(x), 6) if math.isfinite(x) else 0.0


def submission_result(submission: str, read: SubmissionRead, photo_hashes: list[str]) -> SubmissionResult:
    """The published form of a read; `photo_hashes` are the sha256 of every photo's bytes, in order."""
    pages = []
    for page, sha in zip(read.pages, photo_hashes):
        refusal = page.refusal
        errors = [ErrorRecord(code=str(refusal.code), message=refusal.message)] if refusal is not None else []
        quality = PageQuality(**asdict(page.quality)) if page.quality else None
        pages.append(PageResult(source=page.source, sha256=sha, page=page.page, quality=quality, errors=errors,
                                status="refused" if page.refusal is not None else "read"))
    fields: dict[str, FieldResult] = {}
    checks: list[RuleCheck] = []
    reasons = [f"{e.code}: {p.source}" for p in pages for e in p.errors]
    if read.verdict is not None:
        page_of = {f.id: p.number for p in get_template(read.template_id).pages for f in p.fields}
        for field_id, v in read.verdict.fields.items():
            box_probs = read.box_probs[field_id]
            top = box_probs.argmax(axis=1)
            cand = read.candidates[field_id]
            fields[field_id] = FieldResult(
                value=v.value, confidence=_finite(v.confidence), status=v.status, reasons=list(v.reasons),
                read_value=v.read_value, page=page_of[field_id],
                digits=[DigitRead(label=CLASSES[c], p=_finite(box_probs[i, c])) for i, c in enumerate(top)],
                alternatives=[Alternative(value=value, p=_finite(p)) for value, p in zip(cand.values, cand.probs)
                              if value != v.value][:ALTERNATIVES])
        checks = [RuleCheck(rule=rule, ok=ok, hard=hard) for rule, ok, hard in read.verdict.checks]
        reasons += list(read.verdict.reasons)
    return SubmissionResult(submission=submission, photos_key=photos_key(photo_hashes, [p.source for p in read.pages]),
                            template=read.template_id,
                            status=read.status, reasons=reasons, pages=pages, fields=fields, checks=checks,
                            timings_ms=read.timings_ms)


def error_result(submission: str, sources: list[str], photo_hashes: list[str], code: str, message: str) -> SubmissionResult:
    """The record of a submission the pipeline failed on (a bug or a crashed worker): kept, never dropped."""
    pages = [PageResult(source=s, sha256=h, page=None, status="refused", errors=[ErrorRecord(code=str(code), message=message)])
             for s, h in zip(sources, photo_hashes)]
    return SubmissionResult(submission=submission, photos_key=photos_key(photo_hashes, sources), template=None, status="error",
                            reasons=[f"{code}: {message}"], pages=pages)

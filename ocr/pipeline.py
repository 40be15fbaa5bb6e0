"""The one door: the photos of one submission (one TPS) in, its `SubmissionResult` out.

    read_submission(photos, templates, settings) -> SubmissionResult

Stages, in order (each a module of ocr/reader/): decode -> align (locate, identify or match a
reference scan, refine) -> cut boxes -> count tally marks -> classify (one batch for all pages) ->
bubbles fused into their boxes -> field candidates -> tally counts weighed in -> joint decoding
under the hard rules -> verdict. The CLI, the
local pool, the Celery task and the web app all read through here. It never raises: a photo that
cannot be used is a refused page with its reason, a bug is an `error` record whose traceback is
in the log. A refused photo makes the submission `rejected`, with the other pages still read; a
page of the template that no photo shows makes it `incomplete` (`missing_page: N`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ocr.reader.align import AlignSettings, PageAlignment, align_page, cut_boxes
from ocr.reader.bubbles import bubble_likelihood, read_bubbles
from ocr.reader.completeness import missing_pages
from ocr.reader.decode import Photo, decode_photo
from ocr.reader.digits import CLASSES, DigitClassifier, cleaned
from ocr.reader.fields import FieldRead
from ocr.reader.page_hash import page_hash
from ocr.reader.reasons import FindingCode, ReasonCode, Refusal
from ocr.reader.tally import CELL_CLASSES, RowTally
from ocr.reader.tally import counter as tally_counter
from ocr.reader.verdict import Policy, decide
from ocr.record import (
    SCHEMA_VERSION,
    Alternative,
    BoxPlace,
    DigitRead,
    ErrorRecord,
    FieldResult,
    PageGeometry,
    PageQuality,
    PageResult,
    Reason,
    RuleCheck,
    SubmissionResult,
    TallyCount,
    error_result,
    photos_key,
    reader_version,
)
from ocr.templates.model import FormTemplate

log = logging.getLogger(__name__)
ALTERNATIVES = 3  # values a reviewer is offered beside the chosen one
# Of a submission's one budget of moves (joint.MAX_MOVES), the most its first decoding may make: a form whose rules
# that decoding cannot settle in time keeps the rest for the second look's decoding, with surer boxes.
FIRST_DECODING_SHARE = 0.5


@dataclass(frozen=True)
class ReaderSettings:
    """Everything a caller may choose about one read; the same for the CLI, the batch, the cluster and the web app."""

    template_id: str | None = None  # force the template: pages of another are refused as wrong_page
    align: AlignSettings = AlignSettings()  # refusal thresholds and reference matching
    policy: Policy = Policy()  # margins for ok / corrected, use of the rules, the confusion floor
    model: Path | None = None  # a folder with digits.onnx + digits.json; None: the shipped model
    threads: int = 1  # classifier threads (one per process where processes are many)
    # A form that would go to a person: the boxes of its fields not `ok` classified again over shifted views and the
    # form decided again (DigitClassifier.predict_second_look): a stranger's confident misread is often one view's.
    second_look: bool = True


@dataclass(frozen=True)
class PhotoInput:
    """One photo of a submission as the caller loaded it: its bytes and their sha256 (hashed once, by the loader),
    or the refusal that says why its file could not be read."""

    source: str
    data: bytes | Refusal
    sha256: str = ""


@dataclass
class PageRead:
    source: str
    sha256: str
    page: int | None
    refusal: Refusal | None = None
    alignment: PageAlignment | None = field(default=None, repr=False)
    photo: Photo | None = field(default=None, repr=False)  # the decoded photo, for drawing (12 MP each)
    photo_hash: str | None = None  # of its handwriting as aligned (ocr/reader/page_hash.py)


@dataclass
class SubmissionRead:
    """What the stages made of one submission, before it is published as a `SubmissionResult`."""

    template: FormTemplate | None
    status: str  # ok | review | incomplete | rejected
    pages: list[PageRead]
    fields: dict[str, FieldRead] = field(default_factory=dict)  # in template order, verdicts judged
    reasons: tuple = ()  # the submission's findings (FieldReason), from the verdict
    checks: tuple[tuple[str, bool, bool], ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: str = ""  # the classifier's version (its weights' sha256, 12 hex digits)


@lru_cache(maxsize=4)
def classifier(threads: int = 1, model: Path | None = None) -> DigitClassifier:
    """The digit classifier (the shipped model, or the one in folder `model`), loaded once per process."""
    return DigitClassifier(threads=threads) if model is None else DigitClassifier(threads=threads, model=model)


def read_submission(photos: list[PhotoInput], templates: tuple[FormTemplate, ...], settings: ReaderSettings,
                    submission: str = "") -> SubmissionResult:
    """The result of reading `photos` as one submission named `submission`; never raises."""
    return read_submission_and_photos(photos, templates, settings, submission)[0]


def read_submission_and_photos(photos: list[PhotoInput], templates: tuple[FormTemplate, ...], settings: ReaderSettings,
                               submission: str = "") -> tuple[SubmissionResult, list[np.ndarray | None]]:
    """`read_submission`, and each photo's decoded greyscale image (None where it could not be decoded), for the
    callers that draw previews or review images without decoding twice."""
    hashes = [p.sha256 for p in photos]
    try:
        read = read_pages(photos, templates, settings)
        return submission_result(submission, read), [
            p.photo.gray if p.photo is not None else None for p in read.pages]
    except Exception as exc:  # a bug must cost one record, not the batch; the traceback goes to the log
        log.exception("internal error reading submission %r (%s)", submission, ", ".join(p.source for p in photos))
        return error_result(submission, [p.source for p in photos], hashes, ReasonCode.INTERNAL_ERROR,
                            f"{type(exc).__name__}: {exc} (traceback in the log of {log.name})"), [None] * len(photos)


def _align_one(photo: PhotoInput, templates: tuple[FormTemplate, ...], settings: ReaderSettings,
               template: FormTemplate | None, pages: list[PageRead], timings: dict[str, float]) -> PageRead:
    t = time.perf_counter()
    decoded = photo.data if isinstance(photo.data, Refusal) else decode_photo(photo.data, photo.source, photo.sha256)
    timings["decode"] += time.perf_counter() - t
    if isinstance(decoded, Refusal):
        return PageRead(photo.source, photo.sha256, None, decoded)
    t = time.perf_counter()
    forced = settings.template_id or (template.id if template else None)
    alignment = align_page(decoded, templates, template_id=forced, settings=settings.align)
    timings["align"] += time.perf_counter() - t
    if not isinstance(alignment, PageAlignment):
        return PageRead(photo.source, photo.sha256, None, alignment, photo=decoded)
    if any(p.page == alignment.page_number for p in pages):
        return PageRead(photo.source, photo.sha256, alignment.page_number, Refusal(
            ReasonCode.WRONG_PAGE, f"{photo.source}: page {alignment.page_number} was already read in this submission"),
            photo=decoded)
    return PageRead(photo.source, photo.sha256, alignment.page_number, None, alignment, decoded)


def _cut_fields(page: PageRead, fields: dict[str, FieldRead]) -> list[np.ndarray]:
    """Each field of an aligned page gets its FieldRead (bubble likelihoods and findings); its box crops, in order."""
    alignment, crops = page.alignment, []
    for f in alignment.template.page(page.page).fields:
        boxes = cut_boxes(page.photo.gray, alignment, f.id)
        crops.extend(boxes)
        read = fields[f.id] = FieldRead(f.id, page.page, n_boxes=len(boxes))
        if any(not b.measured for b in alignment.boxes if b.field_id == f.id):
            read.doubts.append(FindingCode.BOX_NOT_PLACED)
        if f.bubbles is not None:
            columns = read_bubbles(page.photo, alignment, f.id)
            read.bubbles = np.array([bubble_likelihood(c) for c in columns])
            if any(c.status == "conflict" for c in columns):
                read.flags.append(FindingCode.BUBBLE_CONFLICT)
    return crops


def _box_rows(fields: dict[str, FieldRead]) -> dict[str, slice]:
    """Each field's rows in the boxes of `fields` laid end to end, in their order (the order they were cut in)."""
    rows, start = {}, 0
    for field_id, read in fields.items():
        rows[field_id] = slice(start, start + read.n_boxes)
        start += read.n_boxes
    return rows


def _classify(fields: dict[str, FieldRead], rows: dict[str, slice], probs: np.ndarray, reader: DigitClassifier,
              policy: Policy) -> None:
    """Each field gets its boxes' probabilities (`probs`, its `rows`), floored where the policy says so."""
    probs = probs.astype(np.float64)
    if policy.floor_residual is not None:
        probs = reader.floored(probs, policy.floor_residual)
    for field_id, read in fields.items():
        read.set_probs(probs[rows[field_id]])


def _count_tallies(page: PageRead, fields: dict[str, FieldRead], threads: int) -> None:
    """Each row-sum field of an aligned page gets its row's tally marks."""
    alignment = page.alignment
    for grid in alignment.template.page(page.page).tally_grids:
        sums = tuple(alignment.box_rects_mm(f) for f in grid.row_field_ids)
        for row in tally_counter(threads).read_grid(page.photo.gray, alignment.page_homography, grid,
                                                    sums if all(sums) else None):
            if row.field_id in fields:
                fields[row.field_id].tally = row


def read_pages(photos: list[PhotoInput], templates: tuple[FormTemplate, ...], settings: ReaderSettings) -> SubmissionRead:
    """Every stage over the photos of one submission (may raise on a bug: `read_submission` catches it)."""
    timings = {"decode": 0.0, "align": 0.0, "cut": 0.0, "classify": 0.0, "tally": 0.0, "decode_rules": 0.0}
    pages: list[PageRead] = []
    fields: dict[str, FieldRead] = {}
    inks: list[np.ndarray] = []  # each aligned page's box crops, cleaned (digits.cleaned)
    template = None
    for photo in photos:
        pages.append(_align_one(photo, templates, settings, template, pages, timings))
        if pages[-1].alignment is not None:
            template = pages[-1].alignment.template
            t = time.perf_counter()
            page_ink = cleaned(_cut_fields(pages[-1], fields))
            pages[-1].photo_hash = page_hash(page_ink)
            inks.append(page_ink)
            timings["cut"] += time.perf_counter() - t
            t = time.perf_counter()
            _count_tallies(pages[-1], fields, settings.threads)
            timings["tally"] += time.perf_counter() - t
    if template is None:
        return SubmissionRead(None, "rejected", pages, timings_ms=_ms(timings))
    t = time.perf_counter()
    reader = classifier(settings.threads, settings.model)
    ink = np.concatenate(inks)
    boxes = _box_rows(fields)
    first_look = reader.predict_cleaned(ink)
    _classify(fields, boxes, first_look, reader, settings.policy)
    timings["classify"] = time.perf_counter() - t
    t = time.perf_counter()
    verdict = decide(template, fields, settings.policy, share=FIRST_DECODING_SHARE if settings.second_look else 1.0)
    timings["decode_rules"] = time.perf_counter() - t
    # A form about to go to a person: its fields not emitted as read get a second look (an ok form is left as it is).
    doubtful = {f: read for f, read in fields.items() if read.verdict.status != "ok" and read.n_boxes}
    if settings.second_look and verdict.status != "ok" and doubtful:
        t = time.perf_counter()
        rows = np.concatenate([np.arange(boxes[f].start, boxes[f].stop) for f in doubtful])
        looked = reader.predict_second_look(ink[rows], first_look[rows])
        _classify(doubtful, _box_rows(doubtful), looked, reader, settings.policy)
        timings["classify"] += time.perf_counter() - t
        t = time.perf_counter()
        verdict = decide(template, fields, settings.policy, spent=verdict.moves)  # one budget a submission
        timings["decode_rules"] += time.perf_counter() - t
    missing = missing_pages(template, [(p.source, p.page, p.photo.gray) for p in pages if p.alignment is not None])
    status = ("rejected" if any(p.refusal is not None for p in pages) else  # a Refusal is falsy
              "incomplete" if missing else verdict.status)
    return SubmissionRead(template, status, pages, fields, (*verdict.reasons, *missing), verdict.checks, _ms(timings),
                          reader.version)


def _ms(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v * 1000, 1) for k, v in timings.items()}


def _finite(x: float) -> float:
    return round(float(x), 6) if math.isfinite(x) else 0.0


def _geometry(alignment: PageAlignment) -> PageGeometry:
    return PageGeometry(page_homography=alignment.page_homography.tolist(), photo_size_px=alignment.photo_size,
                        boxes=[BoxPlace(field_id=b.field_id, index=b.index, placed=b.measured,
                                        corners_mm=[[round(float(x), 4), round(float(y), 4)] for x, y in b.corners_mm])
                               for b in alignment.boxes])


def _page_result(page: PageRead) -> PageResult:
    refusal, alignment = page.refusal, page.alignment
    return PageResult(source=page.source, sha256=page.sha256, page=page.page,
                      status="refused" if refusal is not None else "read",
                      quality=PageQuality(**asdict(alignment.quality)) if alignment is not None else None,
                      errors=[ErrorRecord(code=refusal.code, message=refusal.message)] if refusal is not None else [],
                      geometry=_geometry(alignment) if alignment is not None and refusal is None else None,
                      photo_hash=page.photo_hash)


def _tally_count(row: RowTally | None) -> TallyCount | None:
    if row is None:
        return None
    return TallyCount(status=row.status, count=row.count, p=_finite(row.p), cells=[CELL_CLASSES[c] for c in row.cells])


def _field_result(read: FieldRead) -> FieldResult:
    v, top = read.verdict, read.probs.argmax(axis=1)
    return FieldResult(
        value=v.value, confidence=_finite(v.confidence), status=v.status, read_value=v.read_value, page=read.page,
        reasons=[Reason(code=r.code, detail=r.detail) for r in v.reasons],
        digits=[DigitRead(label=CLASSES[c], p=_finite(read.probs[i, c])) for i, c in enumerate(top)],
        alternatives=[Alternative(value=value, p=_finite(p)) for value, p in zip(v.candidates.values,
                                                                                 v.candidates.probs)
                      if value != v.value][:ALTERNATIVES], tally=_tally_count(read.tally))


def submission_result(submission: str, read: SubmissionRead) -> SubmissionResult:
    """The published record of a read."""
    pages = [_page_result(p) for p in read.pages]
    reasons = [Reason(code=e.code, detail=p.source) for p in pages for e in p.errors]
    reasons += [Reason(code=r.code, detail=r.detail) for r in read.reasons]
    return SubmissionResult(
        schema_version=SCHEMA_VERSION, reader_version=reader_version((read.template,) if read.template else (), read.model),
        submission=submission, photos_key=photos_key([p.sha256 for p in read.pages], [p.source for p in read.pages]),
        template=read.template.id if read.template else None, status=read.status, reasons=reasons, pages=pages,
        fields={f: _field_result(r) for f, r in read.fields.items()},
        checks=[RuleCheck(rule=rule, ok=ok, hard=hard) for rule, ok, hard in read.checks], timings_ms=read.timings_ms)

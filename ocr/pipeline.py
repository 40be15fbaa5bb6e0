"""Read one submission (the photos of one TPS): every stage in order, one result.

decode -> align (find, identify, refine) -> cut boxes -> classify (one batch for all pages) ->
bubbles fused into their boxes -> field candidates -> joint decoding under the hard rules ->
statuses. A refused photo makes the submission `rejected`, with the fields of the other pages
still read (within-page rules only judge what was read).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ocr.reader.align import AlignmentQuality, PageAlignment, align_page, cut_boxes
from ocr.reader.bubbles import bubble_likelihood, read_bubbles
from ocr.reader.decode import Photo, decode_photo
from ocr.reader.digits import DigitClassifier
from ocr.templates.family import load_templates
from ocr.reader.fields import FieldCandidates, field_candidates
from ocr.reader.joint import JointResult, decode_jointly
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.templates.model import FormTemplate
from ocr.reader.verdict import Policy, Verdict, judge


@dataclass
class PageRead:
    source: str
    sha256: str
    page: int | None
    refusal: Refusal | None = None
    quality: AlignmentQuality | None = None
    alignment: PageAlignment | None = field(default=None, repr=False)  # for previews: page mm -> photo px
    photo: Photo | None = field(default=None, repr=False)  # kept only when asked (previews): 12 MP each


@dataclass
class SubmissionRead:
    template_id: str | None
    status: str  # ok | review | rejected
    pages: list[PageRead]
    verdict: Verdict | None
    box_probs: dict[str, np.ndarray] = field(default_factory=dict)  # per field (n_boxes, 13), bubbles fused
    candidates: dict[str, FieldCandidates] = field(default_factory=dict, repr=False)
    flags: dict[str, list[str]] = field(default_factory=dict)  # per field: findings that force review
    doubts: dict[str, list[str]] = field(default_factory=dict)  # per field: findings that raise the bar
    timings_ms: dict[str, float] = field(default_factory=dict)


def read_submission(photos: list[tuple[str, bytes | Refusal]], template_id: str | None = None, policy: Policy = Policy(),
                    classifier: DigitClassifier | None = None, keep_photos: bool = False) -> SubmissionRead:
    """Read the photos of one TPS; `template_id` forces the template (a page of another is refused).
    A photo given as a Refusal (its file could not be loaded) is recorded as refused, in its place.
    `keep_photos` keeps each decoded photo on its page (for drawing previews without decoding twice)."""
    classifier = classifier or DigitClassifier()
    templates = tuple(load_templates().values())
    timings = {"decode": 0.0, "align": 0.0, "classify": 0.0, "decode_rules": 0.0}
    pages: list[PageRead] = []
    crops: list[np.ndarray] = []
    owners: list[str] = []
    likelihoods: dict[str, list[np.ndarray]] = {}
    flags: dict[str, list[str]] = {}
    doubts: dict[str, list[str]] = {}
    template = None
    for source, data in photos:
        t = time.perf_counter()
        photo = data if isinstance(data, Refusal) else decode_photo(data, source)
        timings["decode"] += time.perf_counter() - t
        if isinstance(photo, Refusal):
            pages.append(PageRead(source, "", None, photo))
            continue
        t = time.perf_counter()
        alignment = align_page(photo, templates, template_id=template_id or (template.id if template else None))
        timings["align"] += time.perf_counter() - t
        kept = photo if keep_photos else None
        if not isinstance(alignment, PageAlignment):
            pages.append(PageRead(source, photo.sha256, None, alignment, photo=kept))
            continue
        if any(p.page == alignment.page_number for p in pages):
            pages.append(PageRead(source, photo.sha256, alignment.page_number, Refusal(
                ReasonCode.WRONG_PAGE, f"{source}: page {alignment.page_number} was already read in this submission")))
            continue
        template = alignment.template
        pages.append(PageRead(source, photo.sha256, alignment.page_number, None, alignment.quality, alignment, kept))
        for f in template.page(alignment.page_number).fields:
            boxes = cut_boxes(photo, alignment, f.id)
            crops.extend(boxes)
            owners.extend([f.id] * len(boxes))
            if any(not b.measured for b in alignment.boxes if b.field_id == f.id):
                doubts.setdefault(f.id, []).append("box_not_placed")
            if f.bubbles is not None:
                columns = read_bubbles(photo, alignment, f.id)
                likelihoods[f.id] = [bubble_likelihood(c) for c in columns]
                if any(c.status == "conflict" for c in columns):
                    flags.setdefault(f.id, []).append("bubble_conflict")
    refused = any(p.refusal is not None for p in pages)  # a Refusal is falsy
    if template is None:
        return SubmissionRead(None, "rejected", pages, None, timings_ms=_ms(timings))
    t = time.perf_counter()
    probs = classifier.predict(crops)
    timings["classify"] = time.perf_counter() - t
    t = time.perf_counter()
    owners_arr = np.array(owners)
    box_probs: dict[str, np.ndarray] = {}
    for field_id in dict.fromkeys(owners):
        p = probs[owners_arr == field_id].astype(np.float64)
        if field_id in likelihoods:
            p = p * np.array(likelihoods[field_id])
            p /= p.sum(axis=1, keepdims=True)
        box_probs[field_id] = p
    candidates, joint = decode_fields(template, box_probs, policy.use_rules)
    verdict = judge(template, candidates, joint, policy, flags, doubts)
    timings["decode_rules"] = time.perf_counter() - t
    status = "rejected" if refused else verdict.status
    return SubmissionRead(template.id, status, pages, verdict, box_probs, candidates, flags, doubts, _ms(timings))


def decode_fields(template: FormTemplate, box_probs: dict[str, np.ndarray],
                  use_rules: bool) -> tuple[dict[str, FieldCandidates], JointResult]:
    """Each field's candidates and the joint decoding of them (under the template's rules, or none)."""
    candidates = {f: field_candidates(f, p) for f, p in box_probs.items()}
    return candidates, decode_jointly(candidates, list(template.rules) if use_rules else [], template.fields)


def _ms(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v * 1000, 1) for k, v in timings.items()}

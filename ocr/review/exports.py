"""What leaves the review app: verified results (CSV, JSONL) and the corrected fields' box crops for retraining.

Each export is built here as bytes; the web app only sends it and logs who took it.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import cv2
from defusedcsv import csv  # the standard module's API; cells a spreadsheet would run as formulas are quoted
from sqlalchemy import select
from sqlalchemy.orm import Session

from ocr.db.tables import CorrectionRow, ReviewRow
from ocr.review.workflow import Correction, Reviews, SubmissionView
from ocr.run.photo_store import PhotoStore

EXPORT_COLUMNS = ["submission", "region", "desa", "tps", "election", "template", "photos_key", "field", "value",
                  "machine_value", "corrected", "verified_by", "verified_at"]


def verified(reviews: Reviews) -> Iterator[SubmissionView]:
    """Every verified submission, oldest first."""
    with Session(reviews.engine) as session:
        ids = list(session.scalars(select(ReviewRow.submission_id).where(ReviewRow.state == "verified")
                                   .order_by(ReviewRow.submission_id)))
    for submission_id in ids:
        view = reviews.view(submission_id)
        if view is not None:
            yield view


def corrected_fields(reviews: Reviews) -> Iterator[tuple[SubmissionView, str, Correction]]:
    """(submission, field, its newest correction) for every corrected field, for retraining the classifier."""
    with Session(reviews.engine) as session:
        ids = list(session.scalars(select(CorrectionRow.submission_id).distinct().order_by(CorrectionRow.submission_id)))
    for submission_id in ids:
        view = reviews.view(submission_id)
        if view is not None:
            for field_id, correction in view.corrected.items():
                yield view, field_id, correction


def results_csv(views: list[SubmissionView]) -> bytes:
    """One row per field of each submission: its place, effective and machine value, whether corrected, who
    verified it."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for v in views:
        corrected = v.corrected
        place = v.result.place
        where = [place.desa, place.tps, place.election] if place else ["", "", ""]
        for f, value in v.values.items():
            writer.writerow([v.result.submission, v.region, *where, v.result.template, v.result.photos_key, f,
                             "" if value is None else value, "" if v.result.fields[f].value is None
                             else v.result.fields[f].value, int(f in corrected), v.verified_by,
                             v.verified_at.isoformat() if v.verified_at else ""])
    return out.getvalue().encode()


def results_jsonl(views: list[SubmissionView]) -> bytes:
    """One line per submission: its place, effective values, every correction, who verified it."""
    return "".join(json.dumps({
        "submission": v.result.submission, "region": v.region,
        "place": v.result.place.model_dump() if v.result.place else None, "template": v.result.template,
        "photos_key": v.result.photos_key, "values": v.values,
        "corrections": [{"field": c.field_id, "old": c.old_value, "new": c.new_value, "reason": c.reason,
                         "user": c.user, "at": c.at.isoformat()} for c in v.corrections],
        "verified_by": v.verified_by, "verified_at": v.verified_at.isoformat() if v.verified_at else None}) + "\n"
        for v in views).encode()


def box_labels(value: int | None, read_labels: list[str]) -> list[str]:
    """Classifier labels of a field's boxes for a corrected value: its digits right-aligned; a leading box is
    what the reader saw there when that was blank, X or -, else `?` (unknown: leave it out of training)."""
    digits = "" if value is None else str(value)
    if value is None or len(digits) > len(read_labels):
        return ["?"] * len(read_labels)
    lead = len(read_labels) - len(digits)
    return [label if not label.isdigit() else "?" for label in read_labels[:lead]] + list(digits)


def crops_zip(reviews: Reviews, photos: PhotoStore) -> tuple[bytes, int]:
    """Every box of every corrected field as a 48 px PNG with its label (labels.csv), for retraining the classifier."""
    buffer = io.BytesIO()
    rows = [["file", "label", "submission", "field", "box", "value", "reader_label"]]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        crops_of: dict[str, dict] = {}
        for view, field_id, correction in corrected_fields(reviews):
            key = view.result.photos_key
            # Twins (the same photos under two names) share their crops: the first one's correction labels them.
            crops = crops_of.setdefault(key, photos.box_crops(key)).pop(field_id, None)
            if crops is None:
                continue
            read_labels = [d.label for d in view.result.fields[field_id].digits]
            for i, (crop, label) in enumerate(zip(crops, box_labels(correction.new_value, read_labels))):
                if label == "?":  # a leading box the correction says nothing about
                    continue
                name = f"crops/{key[:16]}/{field_id}-{i}.png"
                z.writestr(name, cv2.imencode(".png", crop)[1].tobytes())
                rows.append([name, label, view.result.submission, field_id, i, correction.new_value, read_labels[i]])
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        z.writestr("labels.csv", out.getvalue())
    return buffer.getvalue(), len(rows) - 1

"""Twins: the same photos sent under two submission names, flagged for a person.

Two TPS do not photograph the same sheets: byte-identical photos under a second name are a copy (an operator's
slip, or one tally sent for two TPS). Both stay, one JSONL line and one database row each; the one written later
carries a `duplicate_photos` reason naming the first and, when it was `ok`, the status `review`, so nobody
publishes it unseen. Its other statuses (rejected, error, incomplete, review) already stop it and stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

from ocr.reader.reasons import FindingCode
from ocr.record import Reason, SubmissionResult


def flagged(result: SubmissionResult) -> bool:
    """Whether `result` is a twin that `Twins.check` flagged."""
    return any(reason.code == FindingCode.DUPLICATE_PHOTOS for reason in result.reasons)


class Twins:
    """photos_key -> the first submission written with those photos, in the order of the output."""

    def __init__(self, done: Iterable[tuple[str, str]] = ()) -> None:
        """`done`: (submission, photos_key) of the records already in the output, in their order there."""
        self.first: dict[str, str] = {}
        for submission, key in done:
            self.first.setdefault(key, submission)

    def check(self, result: SubmissionResult) -> SubmissionResult:
        """`result` as it is, or a flagged copy when its photos came before under another name; remembered either way.
        A submission of which no photo could be loaded is never flagged: its key is made of names, not photos."""
        first = self.first.setdefault(result.photos_key, result.submission)
        if first == result.submission or not any(page.sha256 for page in result.pages):
            return result
        return result.model_copy(update={
            "status": "review" if result.status == "ok" else result.status,
            "reasons": [*result.reasons, Reason(code=FindingCode.DUPLICATE_PHOTOS, detail=first)]})

"""Who uploaded a submission's photos: the uploader on its review row and an `upload` entry in the audit log.

Tables only (no accounts, no review rules), so whatever reads uploaded photos can record the upload: the review
app's in-process reader through `ocr.review`, the cluster's reading task directly.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ocr.db.store import ResultStore
from ocr.db.tables import AuditRow, ReviewRow, SubmissionRow


def submission_id_of(store: ResultStore, submission: str | None, photos_key: str) -> int | None:
    """The id of the stored `submission` with these photos (None: of the first stored with them), or None."""
    query = select(SubmissionRow.id).where(SubmissionRow.photos_key == photos_key).order_by(SubmissionRow.id).limit(1)
    if submission is not None:
        query = query.where(SubmissionRow.submission == submission)
    with Session(store.engine) as session:
        return session.scalar(query)


def record_upload(store: ResultStore, submission_id: int, user_id: int, photos: list[str],
                  upload_id: str | None = None) -> None:
    """Who uploaded the submission (the first uploader stays when the same photos come again). An `upload_id`
    already recorded for this submission is not logged again (a cluster task redelivered after a crash)."""
    with Session(store.engine) as session, session.begin():
        if session.get(ReviewRow, submission_id) is None:
            session.add(ReviewRow(submission_id=submission_id, uploaded_by=user_id, state="open"))
        if upload_id is not None and upload_id in session.scalars(
                select(AuditRow.detail["upload"].as_string())
                .where(AuditRow.action == "upload", AuditRow.submission_id == submission_id)):
            return
        detail = {"photos": photos} | ({"upload": upload_id} if upload_id else {})
        session.add(AuditRow(user_id=user_id, action="upload", submission_id=submission_id, detail=detail))

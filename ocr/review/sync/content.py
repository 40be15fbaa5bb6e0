"""What a bundle carries, and the export that writes it from an office's database.

Members: `submissions/<office id>.json` (a `SyncedSubmission`: the result record as the rest of formc has it, its
review, every correction and audit entry of it, with people by name), `office.json` (the office's other audit entries
and the roles of everyone named) and `photos/<sha256>` (each page's photo, once, from the office's photo store).
With `since`, only the submissions something happened to from then on, each whole, so that the centre can replay its
corrections in order; the import skips what it has already.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from ocr.db.store import ResultStore
from ocr.db.tables import AuditRow, CorrectionRow, ReviewRow, SubmissionRow, SyncBundleRow, UserRow
from ocr.record import SubmissionResult
from ocr.review.audit import record, utc
from ocr.review.sync.bundle import Manifest, json_member, write_bundle
from ocr.review.sync.keys import OfficeKey
from ocr.review.workflow import Correction, Reviews
from ocr.run.photo_store import PhotoStore

OFFICE_MEMBER = "office.json"
SUBMISSIONS = "submissions/"
PHOTOS = "photos/"


class _Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyncedAudit(_Member):
    id: int
    at: datetime
    user: str | None
    action: str
    detail: dict[str, Any]


class SyncedReview(_Member):
    state: Literal["open", "verified"]
    uploaded_by: str | None
    verified_by: str | None
    verified_at: datetime | None


class SyncedSubmission(_Member):
    id: int  # the office's row id: with the origin, the submission's identity in the centre's ledger
    result: SubmissionResult
    review: SyncedReview
    # Oldest first; never edited nor deleted, so the n-th is `<id>:<n>` in the centre's ledger.
    corrections: list[Correction]
    audit: list[SyncedAudit]

    @property
    def values(self) -> dict[str, int | None]:
        """The office's effective values: its newest correction of a field, else the machine's value."""
        corrected = {c.field_id: c.new_value for c in self.corrections}
        return {f: corrected.get(f, r.value) for f, r in self.result.fields.items()}


class OfficeRecords(_Member):
    users: dict[str, str]  # name -> role, of everyone the bundle names
    audit: list[SyncedAudit]  # entries about no submission: log-ins, accounts, exports


@dataclass
class ExportReport:
    manifest: Manifest | None = None
    submissions: int = 0
    photos: int = 0
    photos_missing: int = 0  # pages whose photo is not in the office's photo store (or no store was given)
    users: set[str] = field(default_factory=set)  # everyone the bundle names


def last_export(engine: Engine, office: str) -> datetime | None:
    """When the newest export of `office` from this database read it: where `--since last` starts."""
    with Session(engine) as session:
        return utc(session.scalar(select(func.max(SyncBundleRow.until))
                                  .where(SyncBundleRow.direction == "export", SyncBundleRow.origin == office)))


def _after(since: datetime) -> datetime:
    # SQLite keeps the server's timestamps in whole seconds, compared as text: from the start of since's second (what
    # happened in it may go twice, which is harmless; missing it would not be).
    return since.astimezone(timezone.utc).replace(microsecond=0) - timedelta(microseconds=1)


def _changed_since(since: datetime | None) -> Any:
    """The submissions anything happened to from `since` on (all of them without it)."""
    query = select(SubmissionRow.id).order_by(SubmissionRow.id)
    if since is None:
        return query
    after = _after(since)
    return query.where(or_(
        SubmissionRow.created_at >= after, SubmissionRow.updated_at >= after,
        SubmissionRow.id.in_(select(CorrectionRow.submission_id).where(CorrectionRow.created_at >= after)),
        SubmissionRow.id.in_(select(ReviewRow.submission_id).where(ReviewRow.verified_at >= after)),
        SubmissionRow.id.in_(select(AuditRow.submission_id).where(AuditRow.at >= after))))


def _audit(session: Session, where: Any, users: set[str]) -> list[SyncedAudit]:
    entries = [SyncedAudit(id=row.id, at=utc(row.at), user=name, action=row.action, detail=row.detail)
               for row, name in session.execute(select(AuditRow, UserRow.name)
                                                .outerjoin(UserRow, UserRow.id == AuditRow.user_id)
                                                .where(where).order_by(AuditRow.id))]
    users.update(e.user for e in entries if e.user is not None)
    return entries


def _synced(reviews: Reviews, session: Session, submission_id: int, users: set[str]) -> SyncedSubmission:
    """The submission `submission_id` with everything people added to it, naming them in `users`."""
    view = reviews.view(submission_id)
    uploader = view.uploaded_by.name if view.uploaded_by else None
    users.update(n for n in (uploader, view.verified_by, *(c.user for c in view.corrections)) if n is not None)
    return SyncedSubmission(
        id=submission_id, result=view.result, corrections=view.corrections,
        review=SyncedReview(state=view.state, uploaded_by=uploader, verified_by=view.verified_by,
                            verified_at=view.verified_at),
        audit=_audit(session, AuditRow.submission_id == submission_id, users))


def _members(store: ResultStore, photos: PhotoStore | None, since: datetime | None,
             report: ExportReport) -> Iterator[tuple[str, bytes]]:
    sent: set[str] = set()
    reviews = Reviews(store)
    with Session(store.engine) as session:
        for submission_id in session.scalars(_changed_since(since)).all():
            synced = _synced(reviews, session, submission_id, report.users)
            yield f"{SUBMISSIONS}{submission_id}.json", json_member(synced.model_dump(mode="json"))
            report.submissions += 1
            for sha in sorted({p.sha256 for p in synced.result.pages if p.sha256} - sent):
                sent.add(sha)  # a photo of two submissions goes (or is missing) once
                path = photos.photo_path(sha) if photos is not None else None
                if path is None or not path.exists():
                    report.photos_missing += 1
                    continue
                yield f"{PHOTOS}{sha}", path.read_bytes()
                report.photos += 1
        office_wide = AuditRow.submission_id.is_(None)
        audit = _audit(session, office_wide if since is None else office_wide & (AuditRow.at >= _after(since)),
                       report.users)
        roles = dict(session.execute(select(UserRow.name, UserRow.role).where(UserRow.name.in_(report.users))).all())
        yield OFFICE_MEMBER, json_member(OfficeRecords(users=roles, audit=audit).model_dump(mode="json"))


def export_bundle(store: ResultStore, photos: PhotoStore | None, key: OfficeKey, out: Path,
                  since: datetime | None) -> ExportReport:
    """Writes what changed in the office's database from `since` on (everything without it) to the bundle `out`,
    signed with `key`; the export is kept (`last_export`) and logged."""
    until = datetime.now(timezone.utc)  # taken before reading: what changes while it reads goes again next time
    report = ExportReport()
    report.manifest = write_bundle(out, key, str(uuid.uuid4()), since, until, _members(store, photos, since, report))
    with Session(store.engine) as session, session.begin():
        session.add(SyncBundleRow(id=report.manifest.bundle, direction="export", origin=key.office, since=since,
                                  until=until, submissions=report.submissions))
        record(session, None, "sync_export", None, {"bundle": report.manifest.bundle, "office": key.office,
                                                    "submissions": report.submissions, "photos": report.photos})
    return report

"""Finding submissions and audit entries: the filters of the review queue, the list of all submissions and the audit
log, each turned into SQL conditions (the database filters, counts and pages; nothing is cut in Python).

Region (as everywhere in the app): the submission name's leading path segments, so a region filter is a prefix of
the name (`kab-x` or `kab-x/kec-y`); a TPS filter is any part of it. Both ignore case and take `%` and `_` literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import ColumnElement, and_, false, or_, select

from ocr.db.tables import AuditRow, CorrectionRow, ReviewRow, SubmissionRow, UserRow
from ocr.review.conflicts import in_conflict

SHOWN_STATUSES = ("verified", "ok", "review", "incomplete", "rejected", "error")  # a submission's status as listed


@dataclass(frozen=True)
class Span:
    """A time range: at or after `since`, before `until` (either open; aware datetimes)."""

    since: datetime | None = None
    until: datetime | None = None

    def where(self, column: ColumnElement) -> list[ColumnElement]:
        # In UTC, as times are stored: SQLite keeps a datetime's wall time and drops its zone.
        return ([column >= self.since.astimezone(timezone.utc)] if self.since else []) + (
            [column < self.until.astimezone(timezone.utc)] if self.until else [])


@dataclass(frozen=True)
class SubmissionFilter:
    """What the queue and the list of submissions are narrowed to; empty strings filter nothing."""

    region: str = ""  # a prefix of the TPS name
    tps: str = ""  # a part of the TPS name
    status: str = ""  # one of SHOWN_STATUSES: `verified`, else the machine's status of a submission not verified
    reviewer: str = ""  # the name of a user who corrected or verified the submission
    read: Span = Span()  # when the submission was first read (created_at)
    conflict: bool = False  # only submissions of a TPS whose sources disagree (`conflicts.py`)

    def where(self) -> list[ColumnElement]:
        """The conditions on submissions outer-joined to their review rows."""
        name = SubmissionRow.submission
        verified = ReviewRow.state == "verified"
        conditions = self.read.where(SubmissionRow.created_at)
        if self.region:
            conditions.append(name.istartswith(self.region, autoescape=True))
        if self.tps:
            conditions.append(name.icontains(self.tps, autoescape=True))
        if self.status == "verified":
            conditions.append(verified)
        elif self.status in SHOWN_STATUSES:
            conditions += [SubmissionRow.status == self.status, or_(ReviewRow.state.is_(None), ~verified)]
        elif self.status:
            conditions.append(false())  # a status no submission has
        if self.reviewer:
            user = select(UserRow.id).where(UserRow.name == self.reviewer).scalar_subquery()
            conditions.append(or_(ReviewRow.verified_by == user, SubmissionRow.id.in_(
                select(CorrectionRow.submission_id).where(CorrectionRow.user_id == user))))
        if self.conflict:
            conditions.append(in_conflict())
        return conditions


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log is narrowed to; empty strings filter nothing."""

    user: str = ""  # who acted, or the name a failed or refused log-in was for
    action: str = ""
    submission: str = ""  # a submission's id, or a part of its TPS name
    at: Span = Span()

    def where(self) -> list[ColumnElement]:
        """The conditions on audit entries outer-joined to their users."""
        conditions = self.at.where(AuditRow.at)
        if self.user:
            conditions.append(or_(UserRow.name == self.user, and_(AuditRow.user_id.is_(None),
                                                                 AuditRow.detail["name"].as_string() == self.user)))
        if self.action:
            conditions.append(AuditRow.action == self.action)
        if self.submission.isdigit():
            conditions.append(AuditRow.submission_id == int(self.submission))
        elif self.submission:
            conditions.append(AuditRow.submission_id.in_(select(SubmissionRow.id).where(
                SubmissionRow.submission.icontains(self.submission, autoescape=True))))
        return conditions

"""The audit log: every action of a person, written in the same transaction as the change it records.

`record` adds an entry inside a caller's transaction; `AuditLog` (the base of `Accounts` and `Reviews`) holds the
store and logs actions that change nothing else (log-in, export, a refused attempt) and reads the log back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ocr.db.store import ResultStore
from ocr.db.tables import AuditRow, UserRow
from ocr.review.search import AuditFilter

if TYPE_CHECKING:
    from ocr.review.accounts import User


def utc(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes of CURRENT_TIMESTAMP, which is UTC.
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def record(session: Session, user: User | None, action: str, submission_id: int | None, detail: dict[str, Any]) -> None:
    """One audit entry, added to `session`'s transaction (so it is kept exactly when the change is)."""
    session.add(AuditRow(user_id=user.id if user else None, action=action, submission_id=submission_id, detail=detail))


class AuditLog:
    """The audit log of the results database behind `store`."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self.engine = store.engine

    def log(self, user: User | None, action: str, submission_id: int | None = None, **detail: Any) -> None:
        """Records an action that changes nothing else (log-in, export, refused attempt)."""
        with Session(self.engine) as session, session.begin():
            record(session, user, action, submission_id, detail)

    def audit(self, limit: int = 200, submission_id: int | None = None, offset: int = 0,
              found: AuditFilter = AuditFilter()) -> list[dict[str, Any]]:
        """The newest entries first, narrowed to `found` (and `submission_id`), `offset` skipped: at, user, action,
        submission_id, address (the client's, kept by log-ins and other security events, else None), detail."""
        query = (select(AuditRow.at, UserRow.name, AuditRow.action, AuditRow.submission_id, AuditRow.detail)
                 .outerjoin(UserRow, UserRow.id == AuditRow.user_id).where(*found.where())
                 .order_by(AuditRow.id.desc()).limit(limit).offset(offset))
        if submission_id is not None:
            query = query.where(AuditRow.submission_id == submission_id)
        with Session(self.engine) as session:
            return [dict(at=utc(at), user=name, action=action, submission_id=sid, address=detail.get("address"),
                         detail=detail)
                    for at, name, action, sid, detail in session.execute(query)]

    def audit_size(self, found: AuditFilter = AuditFilter()) -> int:
        """How many entries the audit log, narrowed to `found`, holds."""
        query = (select(func.count()).select_from(AuditRow).outerjoin(UserRow, UserRow.id == AuditRow.user_id)
                 .where(*found.where()))
        with Session(self.engine) as session:
            return session.scalar(query)

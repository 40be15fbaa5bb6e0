"""Log-in sessions kept in the database (`sessions`), so that ending one takes effect on every worker at once.

The browser's cookie carries a random session id; the table keeps only its sha256. A session ends when its user
logs out, at its expiry (SESSION_HOURS after log-in), or when it is revoked: the user deactivated, their role or
password changed. Its user is looked up together with the session on every request (`Accounts.session_user`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import update
from sqlalchemy.orm import Session

from ocr.db.tables import SessionRow

SESSION_HOURS = 12  # a working day in the office
SEEN_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often: not one write per page


def now() -> datetime:
    return datetime.now(timezone.utc)


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(session: Session, user_id: int, address: str, at: datetime) -> str:
    """A new session of `user_id` from `address`, added to `session`'s transaction; its id (for the cookie only)."""
    session_id = secrets.token_urlsafe(32)
    session.add(SessionRow(id_hash=id_hash(session_id), user_id=user_id, created_at=at, last_seen_at=at,
                           expires_at=at + timedelta(hours=SESSION_HOURS), address=address))
    return session_id


def revoke(session: Session, user_id: int, at: datetime, keep: str | None = None) -> None:
    """Ends every open session of `user_id` but the one whose id is `keep`, in `session`'s transaction."""
    query = update(SessionRow).where(SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None))
    if keep is not None:
        query = query.where(SessionRow.id_hash != id_hash(keep))
    session.execute(query.values(revoked_at=at))

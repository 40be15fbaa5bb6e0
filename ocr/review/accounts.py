"""Accounts of the review app: users and their roles, argon2 password hashes, log-in and its sessions.

Users are never deleted (the audit log names them), only deactivated. Every change of an account is logged;
deactivation, a new role or a password reset ends the user's sessions at once (`sessions.py`), and a user who
changes their own password keeps only the session they changed it in. Log-ins are throttled (`throttle.py`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ocr.db.tables import SessionRow, UserRow
from ocr.review import sessions, throttle
from ocr.review.audit import AuditLog, record, utc
from ocr.review.errors import LastAdmin, NoSuchUser, ReviewError

ROLES = ("operator", "reviewer", "admin")
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Checked against when the user name is unknown, so a log-in takes as long either way.
_DUMMY_HASH = _hasher.hash("not a password")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class Account:
    """A user as the admin's list shows them."""

    name: str
    role: str
    active: bool
    created_at: datetime
    last_login: datetime | None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def generate_password() -> str:
    """A new password for a reset (96 random bits, 16 characters), shown once to whoever reset it."""
    return secrets.token_urlsafe(12)


def _row(session: Session, name: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.name == name))
    if row is None:
        raise NoSuchUser("no user named '%(name)s'", name=name)
    return row


def _keep_an_admin(session: Session, row: UserRow) -> None:
    """Refuses to take away the last active admin: no one could manage the accounts in the app any more."""
    others = session.scalar(select(func.count()).select_from(UserRow).where(
        UserRow.role == "admin", UserRow.active.is_(True), UserRow.id != row.id))
    if row.role == "admin" and row.active and others == 0:
        raise LastAdmin("%(name)s is the last active admin: make another admin first", name=row.name)


class Accounts(AuditLog):
    """The accounts in the results database behind `store`."""

    def add_user(self, name: str, role: str, password_hash: str, by: User | None = None) -> User:
        if role not in ROLES:
            raise ReviewError("role must be one of %(roles)s, not '%(role)s'", roles=", ".join(ROLES), role=role)
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,100}", name):
            raise ReviewError("a user name is 1-100 letters, digits, '.', '_', '@' or '-'")
        with Session(self.engine) as session, session.begin():
            if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise ReviewError("user '%(name)s' exists already", name=name)
            row = UserRow(name=name, role=role, password_hash=password_hash, active=True)
            session.add(row)
            session.flush()
            record(session, by, "user_add", None, {"name": name, "role": role})
            return User(row.id, name, role)

    def credentials(self, name: str) -> tuple[User, str] | None:
        """An active user and their password hash, by name."""
        with Session(self.engine) as session:
            row = session.scalar(select(UserRow).where(UserRow.name == name, UserRow.active.is_(True)))
            return (User(row.id, row.name, row.role), row.password_hash) if row else None

    def set_password_hash(self, user: User, password_hash: str) -> None:
        """A rehash on log-in when the hashing parameters changed."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(UserRow).where(UserRow.id == user.id).values(password_hash=password_hash))

    def accounts(self) -> list[Account]:
        """Every user by name, with when they last logged in (None: never)."""
        last = (select(SessionRow.user_id, func.max(SessionRow.created_at).label("at"))
                .group_by(SessionRow.user_id).subquery())
        with Session(self.engine) as session:
            return [Account(row.name, row.role, row.active, utc(row.created_at), utc(at)) for row, at in session.execute(
                select(UserRow, last.c.at).outerjoin(last, last.c.user_id == UserRow.id).order_by(UserRow.name))]

    # --- changes by an admin (or on the command line, `by` None) ---------------------------------------------------

    def set_active(self, name: str, active: bool, by: User | None = None) -> None:
        """Deactivates (ending their sessions) or activates again the user `name`."""
        at = sessions.now()
        with Session(self.engine) as session, session.begin():
            row = _row(session, name)
            if row.active == active:
                return
            if not active:
                _keep_an_admin(session, row)
                sessions.revoke(session, row.id, at)
            row.active = active
            record(session, by, "user_activate" if active else "user_deactivate", None, {"name": name})

    def set_role(self, name: str, role: str, by: User | None = None) -> None:
        """Gives `name` another role; their sessions end, so the new role holds from their next log-in."""
        if role not in ROLES:
            raise ReviewError("role must be one of %(roles)s, not '%(role)s'", roles=", ".join(ROLES), role=role)
        at = sessions.now()
        with Session(self.engine) as session, session.begin():
            row = _row(session, name)
            if row.role == role:
                return
            if role != "admin":
                _keep_an_admin(session, row)
            sessions.revoke(session, row.id, at)
            record(session, by, "user_set_role", None, {"name": name, "old": row.role, "new": role})
            row.role = role

    def reset_password(self, name: str, password_hash: str, by: User | None = None) -> None:
        """Sets the password of `name` for them (forgotten, or known to someone else): all their sessions end."""
        at = sessions.now()
        with Session(self.engine) as session, session.begin():
            row = _row(session, name)
            row.password_hash = password_hash
            sessions.revoke(session, row.id, at)
            record(session, by, "user_reset_password", None, {"name": name})

    # --- log-in and sessions ----------------------------------------------------------------------------------------

    def refuse_throttled(self, name: str, address: str) -> None:
        """Raises `Throttled`, and logs it, while log-ins as `name` or from `address` are throttled."""
        with Session(self.engine) as session, session.begin():
            refusal = throttle.throttled(session, name, address, sessions.now())
            if refusal is not None:
                record(session, None, "login_throttled", None, {"name": name, "address": address,
                                                                "scope": refusal.scope})
        if refusal is not None:
            raise refusal

    def count_failure(self, name: str, address: str) -> None:
        with Session(self.engine) as session, session.begin():
            throttle.count_failure(session, name, address, sessions.now())

    def start_session(self, user: User, address: str) -> str:
        """A log-in of `user` from `address`: a new session, logged; its id for the cookie."""
        with Session(self.engine) as session, session.begin():
            session_id = sessions.start(session, user.id, address, sessions.now())
            throttle.forget_account(session, user.name)
            record(session, user, "login", None, {"address": address})
        return session_id

    def session_user(self, session_id: str) -> User | None:
        """The active user of this open, unexpired session (seen now), or None."""
        at = sessions.now()
        with Session(self.engine) as session, session.begin():
            found = session.execute(
                select(SessionRow, UserRow).join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id_hash == sessions.id_hash(session_id), SessionRow.revoked_at.is_(None),
                       SessionRow.expires_at > at, UserRow.active.is_(True))).first()
            if found is None:
                return None
            row, user = found
            if at - utc(row.last_seen_at) >= sessions.SEEN_EVERY:
                row.last_seen_at = at
            return User(user.id, user.name, user.role)

    def end_session(self, session_id: str, user: User) -> None:
        """Log-out: the session ends here, for every copy of its cookie."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(SessionRow).where(SessionRow.id_hash == sessions.id_hash(session_id))
                            .values(revoked_at=sessions.now()))
            record(session, user, "logout", None, {})

    def set_own_password(self, user: User, password_hash: str, session_id: str) -> None:
        """`user` changed their password in the session `session_id`: their other sessions end."""
        at = sessions.now()
        with Session(self.engine) as session, session.begin():
            session.get(UserRow, user.id).password_hash = password_hash
            sessions.revoke(session, user.id, at, keep=session_id)
            record(session, user, "user_change_password", None, {})


def authenticate(accounts: Accounts, name: str, password: str) -> User | None:
    """The user whose name and password these are, or None; rehashes a hash made with old parameters."""
    found = accounts.credentials(name)
    try:
        _hasher.verify(found[1] if found else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if found is None:
        return None
    user, stored = found
    if _hasher.check_needs_rehash(stored):
        accounts.set_password_hash(user, _hasher.hash(password))
    return user


def log_in(accounts: Accounts, name: str, password: str, address: str) -> tuple[User, str] | None:
    """The user and the id of their new session, or None for a wrong name or password (counted against the name and
    `address`); raises `Throttled` while either has too many recent failures. Slow by design (argon2): call it off
    the event loop."""
    counted, address = name[:100], address[:64]  # as the columns keep them
    accounts.refuse_throttled(counted, address)
    user = authenticate(accounts, name, password)
    if user is None:
        accounts.count_failure(counted, address)
        return None
    return user, accounts.start_session(user, address)


def change_password(accounts: Accounts, user: User, old: str, new: str, session_id: str, address: str) -> bool:
    """`user` sets their own password, proving the old one (a wrong one counts as a failed log-in, and it is
    throttled as log-ins are); False when `old` is wrong. Slow by design: call it off the event loop."""
    address = address[:64]
    accounts.refuse_throttled(user.name, address)
    if authenticate(accounts, user.name, old) is None:
        accounts.count_failure(user.name, address)
        return False
    accounts.set_own_password(user, hash_password(new), session_id)
    return True

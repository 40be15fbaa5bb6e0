"""Accounts of the review app: users and their roles, argon2 password hashes, checking a log-in.

Users are never deleted (the audit log names them), only deactivated; a new account is logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ocr.db.store import UserRow
from ocr.review.audit import AuditLog, record
from ocr.review.errors import ReviewError

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


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


class Accounts(AuditLog):
    """The accounts in the results database behind `store`."""

    def add_user(self, name: str, role: str, password_hash: str, by: User | None = None) -> User:
        if role not in ROLES:
            raise ReviewError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,100}", name):
            raise ReviewError("a user name is 1-100 letters, digits, '.', '_', '@' or '-'")
        with Session(self.engine) as session, session.begin():
            if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise ReviewError(f"user {name!r} exists already")
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

    def user(self, user_id: int) -> User | None:
        with Session(self.engine) as session:
            row = session.get(UserRow, user_id)
            return User(row.id, row.name, row.role) if row is not None and row.active else None


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

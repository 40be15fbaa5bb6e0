"""Log-in throttling: failed log-ins counted per user name and per client address in the database, so the limits
hold across workers and restarts.

After ACCOUNT_LIMIT failures for one name, or ADDRESS_LIMIT from one address, within WINDOW, log-ins for that name
(from anywhere) or from that address are refused without checking the password, until the oldest of those failures
is WINDOW old. Refused attempts are not counted, so a lock-out ends when the window passes. A log-in that succeeds
forgets its name's failures (not its address's). Lock-outs and refusals go to the audit log with the address.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ocr.db.tables import LoginFailureRow
from ocr.review.audit import record, utc
from ocr.review.errors import ReviewError

ACCOUNT_LIMIT = 10
ADDRESS_LIMIT = 20
WINDOW = timedelta(minutes=15)


class Throttled(ReviewError):
    """Log-ins refused for a name (`scope` account) or from an address (`scope` address) until `until`."""

    def __init__(self, scope: str, until: datetime) -> None:
        super().__init__(f"too many failed log-ins {'for this account' if scope == 'account' else 'from this address'}"
                         f": try again after {until:%H:%M} UTC")
        self.scope, self.until = scope, until


def throttled(session: Session, name: str, address: str, at: datetime) -> Throttled | None:
    """Whether a log-in as `name` from `address` at `at` is refused, and until when (name and address cut to their
    columns' lengths, as `ocr.review.accounts.log_in` does)."""
    for scope, column, value, limit in (("account", LoginFailureRow.name, name, ACCOUNT_LIMIT),
                                        ("address", LoginFailureRow.address, address, ADDRESS_LIMIT)):
        recent = session.scalars(select(LoginFailureRow.at).where(column == value, LoginFailureRow.at > at - WINDOW)
                                 .order_by(LoginFailureRow.at.desc()).limit(limit)).all()
        if len(recent) == limit:
            return Throttled(scope, utc(recent[-1]) + WINDOW)
    return None


def count_failure(session: Session, name: str, address: str, at: datetime) -> None:
    """Counts a failed log-in in `session`'s transaction, with its audit entry, and a `login_locked` one when it
    reaches a limit."""
    # Failures older than the window count for nothing: dropped here, so the table stays small.
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.at <= at - WINDOW))
    session.add(LoginFailureRow(at=at, name=name, address=address))
    session.flush()
    record(session, None, "login_failed", None, {"name": name, "address": address})
    if (locked := throttled(session, name, address, at)) is not None:
        record(session, None, "login_locked", None, {"name": name, "address": address, "scope": locked.scope,
                                                     "until": locked.until.isoformat()})


def forget_account(session: Session, name: str) -> None:
    """A successful log-in as `name`: its earlier failures no longer count against the account."""
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.name == name))

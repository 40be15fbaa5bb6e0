"""Sessions and log-in throttling in the database, on SQLite and PostgreSQL (conftest's `url`): the times they compare
are stored by each dialect in its own way."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ocr.db.store import ResultStore
from ocr.db.tables import LoginFailureRow, SessionRow
from ocr.review.accounts import Accounts, User, hash_password, log_in
from ocr.review.audit import utc
from ocr.review.sessions import SEEN_EVERY, id_hash, now
from ocr.review.throttle import ACCOUNT_LIMIT, WINDOW, Throttled

PASSWORD = "a long password"
_numbers = itertools.count()


@pytest.fixture
def accounts(url) -> Iterator[Accounts]:
    with ResultStore(url) as store:
        yield Accounts(store)


def new_user(accounts: Accounts) -> User:
    return accounts.add_user(f"u{next(_numbers)}-{uuid.uuid4().hex[:8]}", "reviewer", hash_password(PASSWORD))


def test_a_session_lives_until_log_out_expiry_or_revocation(accounts):
    user = new_user(accounts)
    logged_in, session_id = log_in(accounts, user.name, PASSWORD, "10.0.0.1")
    assert logged_in == user and accounts.session_user(session_id) == user
    with accounts.engine.begin() as connection:  # seen a while ago: brought up to date, once
        connection.execute(update(SessionRow).where(SessionRow.id_hash == id_hash(session_id))
                           .values(last_seen_at=now() - 2 * SEEN_EVERY))
    assert accounts.session_user(session_id) == user
    with accounts.engine.connect() as connection:
        seen = connection.scalar(select(SessionRow.last_seen_at).where(SessionRow.id_hash == id_hash(session_id)))
    assert utc(seen) > now() - SEEN_EVERY
    accounts.end_session(session_id, user)
    assert accounts.session_user(session_id) is None

    _, expiring = log_in(accounts, user.name, PASSWORD, "10.0.0.1")
    with accounts.engine.begin() as connection:
        connection.execute(update(SessionRow).where(SessionRow.id_hash == id_hash(expiring))
                           .values(expires_at=now() - timedelta(seconds=1)))
    assert accounts.session_user(expiring) is None

    _, kept = log_in(accounts, user.name, PASSWORD, "10.0.0.1")
    _, other = log_in(accounts, user.name, PASSWORD, "10.0.0.2")
    accounts.set_own_password(user, hash_password("a newer password"), kept)
    assert accounts.session_user(kept) == user and accounts.session_user(other) is None
    accounts.set_role(user.name, "operator")
    assert accounts.session_user(kept) is None


def test_failed_log_ins_lock_the_account_for_the_window(accounts):
    user = new_user(accounts)
    address = f"10.2.{next(_numbers) % 250}.1"
    first = now()
    for _ in range(ACCOUNT_LIMIT):
        assert log_in(accounts, user.name, "wrong password", address) is None
    with pytest.raises(Throttled) as refusal:
        log_in(accounts, user.name, PASSWORD, "10.3.0.1")
    assert refusal.value.scope == "account"
    assert first + WINDOW <= refusal.value.until <= now() + WINDOW
    with accounts.engine.begin() as connection:  # the window passes
        connection.execute(update(LoginFailureRow).where(LoginFailureRow.name == user.name)
                           .values(at=LoginFailureRow.at - WINDOW))
    assert log_in(accounts, user.name, PASSWORD, address)[0] == user
    with accounts.engine.connect() as connection:  # the account's failures are forgotten at a log-in
        assert connection.scalar(select(LoginFailureRow.id).where(LoginFailureRow.name == user.name)) is None

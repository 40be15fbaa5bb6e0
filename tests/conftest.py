"""Shared fixtures. `shared_dir` is ../shared beside the checkout: tests that need it skip without it.

`postgres_url` starts a throwaway PostgreSQL server (Debian package postgresql) and skips without one; `url` runs a
test on a fresh SQLite file and on that server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import ServerUnavailable, postgres_server

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "forms").is_dir():
        pytest.skip("../shared (official forms, development data) is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def family_text() -> str:
    """The shipped family file, the boilerplate that validation tests mutate."""
    return (REPO / "templates_forms" / "c_hasil_2024.yaml").read_text()


def throwaway_url(start) -> Iterator[str]:
    """The URL of the throwaway server `start()` runs (bench/servers.py) while the fixture lives; skips without it."""
    try:
        with start() as server:
            yield server.url
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL to a fresh database on a throwaway PostgreSQL server, started for this test session and stopped after."""
    yield from throwaway_url(postgres_server)


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> str:
    """The session's PostgreSQL database with no results in it (nor imported sources, nor choices among them): one
    database serves the session, and each test that counts results starts from none, whatever the tests before it left
    (accounts stay: use new names)."""
    from sqlalchemy import delete

    from ocr.db.store import ResultStore
    from ocr.db.tables import ExternalSourceRow, SourceChoiceRow, SubmissionRow

    with ResultStore(postgres_url) as store, store.engine.begin() as connection:
        for table in (SubmissionRow, ExternalSourceRow, SourceChoiceRow):
            connection.execute(delete(table))
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A results database: a fresh SQLite file, then the session's PostgreSQL database emptied of results."""
    from ocr.db.store import default_url

    if request.param == "sqlite":
        return default_url(tmp_path / "results.db")
    return request.getfixturevalue("empty_postgres_url")

"""What the tests of a TPS's sources share: the sources of a fresh results database (SQLite, then PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ocr.db.store import ResultStore
from ocr.review.sources import Sources
from ocr.review.workflow import Reviews


@pytest.fixture
def sources(url) -> Iterator[Sources]:
    with ResultStore(url) as store:
        yield Sources(Reviews(store))

"""The lists' filters as SQL (ocr/review/search.py) on SQLite and PostgreSQL (conftest's `url`): name prefixes and parts
with LIKE's wildcards taken literally, days in a zone against times each dialect stores its own way, a JSON field of
the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from ocr.db.store import ResultStore
from ocr.db.tables import SubmissionRow
from ocr.review.accounts import hash_password
from ocr.review.search import AuditFilter, Span, SubmissionFilter
from ocr.review.workflow import Reviews
from tests.db.test_store import tally

WIB = ZoneInfo("Asia/Jakarta")


@pytest.fixture
def reviews(url) -> Iterator[Reviews]:
    with ResultStore(url) as store:
        yield Reviews(store)


def test_filters_narrow_the_queue_the_list_and_the_audit_log(reviews):
    names = {"kab-a/tps-1": "review", "kab-a/tps_2": "ok", "kab-ab/tpsx2": "review", "kab-b/tps-3": "rejected"}
    reviews.store.save_many(tally(status).model_copy(update={"submission": name, "photos_key": f"{n:064x}"})
                            for n, (name, status) in enumerate(names.items()))
    ids = {name: reviews.id_of(name, f"{n:064x}") for n, name in enumerate(names)}
    reviewer = reviews.add_user(f"rudi-{uuid.uuid4().hex[:8]}", "reviewer", hash_password("a long password"))
    reviews.correct(ids["kab-a/tps-1"], reviewer, {"suara_paslon_1": 71}, "boxes misread")
    with reviews.engine.begin() as db:  # read at 20:00 UTC on 27 November: the 28th in WIB
        db.execute(update(SubmissionRow).where(SubmissionRow.id == ids["kab-b/tps-3"])
                   .values(created_at=datetime(2024, 11, 27, 20, tzinfo=timezone.utc)))

    def queued(**found) -> list[str]:
        return [item.submission for item in reviews.queue(found=SubmissionFilter(**found))]

    def listed(**found) -> set[str]:
        items = reviews.submissions(found=SubmissionFilter(**found))
        assert reviews.submissions_size(SubmissionFilter(**found)) == len(items)
        return {item.submission for item in items}

    assert set(queued(region="KAB-A/")) == {"kab-a/tps-1", "kab-a/tps_2"}
    assert listed(region="kab-a") == {"kab-a/tps-1", "kab-a/tps_2", "kab-ab/tpsx2"}
    assert listed(tps="tps_2") == {"kab-a/tps_2"} and listed(tps="%") == set()
    assert listed(status="rejected") == {"kab-b/tps-3"} and queued(status="rejected") == []
    assert queued(reviewer=reviewer.name) == ["kab-a/tps-1"] and listed(reviewer="nobody") == set()
    day = Span(datetime(2024, 11, 28, tzinfo=WIB), datetime(2024, 11, 29, tzinfo=WIB))
    assert listed(read=day) == {"kab-b/tps-3"} and listed(read=Span(until=day.since)) == set()
    assert reviews.queue_size(SubmissionFilter(region="kab-a", status="ok")) == 1

    tried = f"olga-{uuid.uuid4().hex[:8]}"  # a failed log-in names no user, only the name tried
    reviews.log(None, "login_failed", name=tried, address="10.9.9.9")
    found = AuditFilter(user=tried, action="login_failed")
    assert [(e["action"], e["address"]) for e in reviews.audit(found=found)] == [("login_failed", "10.9.9.9")]
    assert reviews.audit_size(found) == 1
    by_name = reviews.audit(found=AuditFilter(submission="kab-a/tps-1"))
    assert [(e["action"], e["user"], e["address"]) for e in by_name] == [("correct", reviewer.name, None)]

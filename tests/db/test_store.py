"""The results database on a real SQLite file and a real PostgreSQL server (conftest's `postgres_url`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, select, text

from ocr.db.store import Base, FieldRow, PageRow, ResultStore, StoreUnavailable, SubmissionRow, default_url
from ocr.record import (
    Alternative,
    DigitRead,
    ErrorRecord,
    FieldResult,
    PageQuality,
    PageResult,
    RuleCheck,
    SubmissionResult,
    error_result,
    photos_key,
)

PHOTOS = ["a" * 64, "b" * 64]
SOURCES = ["page-2.jpg", "page-3.jpg"]


def test_photos_key_ignores_names_and_order_but_keeps_unloaded_photos_apart():
    assert photos_key(PHOTOS, SOURCES) == photos_key(PHOTOS[::-1], ["x.jpg", "y.jpg"])
    # Photos that could not be loaded have no hash: their names keep two such submissions in two rows.
    assert photos_key(["", ""], ["tps-1/a.jpg", "tps-1/b.jpg"]) != photos_key(["", ""], ["tps-2/a.jpg", "tps-2/b.jpg"])


def digits(*labels: str) -> list[DigitRead]:
    return [DigitRead(label=label, p=0.987654321) for label in labels]


def tally(status: str = "review", paslon_1: int | None = 74) -> SubmissionResult:
    """A kwk-gubernur-3 read: page 2 read, page 3 refused as blurred, one field left for a reviewer."""
    fields = {
        "suara_paslon_1": FieldResult(value=paslon_1, confidence=0.41, status="review", reasons=["low_margin: 2.1"],
                                      read_value=71, digits=digits("blank", "7", "1"), page=2,
                                      alternatives=[Alternative(value=71, p=0.3312), Alternative(value=14, p=0.05)]),
        "suara_paslon_2": FieldResult(value=244, confidence=0.999871, status="ok", read_value=244,
                                      digits=digits("2", "4", "4"), alternatives=[Alternative(value=214, p=1.2e-05)], page=2),
        "suara_paslon_3": FieldResult(value=2, confidence=0.93, status="corrected",
                                        reasons=["corrected_by_rules: read 7"], read_value=7,
                                      digits=digits("-", "-", "7"), page=2),
        "suara_sah": FieldResult(value=None, confidence=0.0, status="unreadable", reasons=["unreadable"], page=3),
    }
    pages = [
        PageResult(source="tps-0001/page-2.jpg", sha256=PHOTOS[0], page=2, status="read",
                   quality=PageQuality(markers_found=4, tag_read=True, residual_mm=0.37, page_fraction=0.81,
                                       sharpness=0.62, paper_level=214, boxes_seen=0.97)),
        PageResult(source="tps-0001/page-3.jpg", sha256=PHOTOS[1], page=None, status="refused",
                   errors=[ErrorRecord(code="too_blurry", message="Photo is blurred: hold the phone still and retake it")]),
    ]
    checks = [RuleCheck(rule="suara_sah = sum(suara_paslon_*)", ok=False, hard=True),
              RuleCheck(rule="suara_total <= surat_diterima", ok=True, hard=False)]
    return SubmissionResult(submission="tps-0001", photos_key=photos_key(PHOTOS, SOURCES), template="kwk-gubernur-3",
                            status=status,
                            reasons=["too_blurry: tps-0001/page-3.jpg", "rule_failed: suara_sah = sum(suara_paslon_*)"],
                            pages=pages,
                            fields=fields, checks=checks, timings_ms={"align": 812.5, "classify": 97.25, "total": 1003.0})


def rows(store: ResultStore, table: type[Base]) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def submission_ids(store: ResultStore) -> list[int]:
    with store.engine.connect() as connection:
        return list(connection.scalars(select(SubmissionRow.id)))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return default_url(tmp_path / "results.db")
    # One PostgreSQL database serves the session: each test starts from empty tables.
    postgres_url = request.getfixturevalue("postgres_url")
    with ResultStore(postgres_url) as store, store.engine.begin() as connection:
        connection.execute(delete(SubmissionRow))
    return postgres_url


def test_round_trip_and_replace_by_photos_key(url):
    first = tally()
    with ResultStore(url) as store:
        store.save(first)
        assert store.get(first.photos_key) == first
        assert list(store.get(first.photos_key).fields) == list(first.fields)  # the template's order, for output
        first_id = submission_ids(store)
        assert store.get("0" * 64) is None

        # The same photos again (a resumed batch, a redelivered task): replaced, never added.
        second = tally(status="ok", paslon_1=71)
        second.fields.pop("suara_sah")
        store.save(second)
        assert store.get(second.photos_key) == second
        assert (rows(store, SubmissionRow), rows(store, PageRow), rows(store, FieldRow)) == (1, 2, 3)
        assert submission_ids(store) == first_id  # updated in place: the review app's links survive

        failed = error_result("tps-0002", ["tps-0002/page-1.jpg"], ["c" * 64], "internal_error", "worker crashed")
        store.save_many([failed, second])
        assert store.keys() == {second.photos_key, failed.photos_key}
        assert store.count_by_status() == {"ok": 1, "error": 1}

    # Opening an existing database runs the migrations again as a no-op and finds the data.
    with ResultStore(url) as store:
        assert store.get(second.photos_key) == second
        assert store.get(failed.photos_key) == failed


def test_save_many_stores_all_or_nothing(url):
    def results():
        yield tally()
        raise RuntimeError("batch interrupted")

    with ResultStore(url) as store:
        with pytest.raises(RuntimeError):
            store.save_many(results())
        assert store.keys() == set()


def test_workers_saving_one_submission_at_once_leave_one_copy(url):
    # A redelivered task can run beside the original: both upsert the same photos_key.
    with ResultStore(url) as store, ThreadPoolExecutor(4) as pool:
        list(pool.map(store.save, [tally(paslon_1=n) for n in range(20)]))
        assert (rows(store, SubmissionRow), rows(store, PageRow), rows(store, FieldRow)) == (1, 2, 4)
        assert store.get(photos_key(PHOTOS, SOURCES)).fields["suara_paslon_1"].value in range(20)


def test_deleting_a_submission_deletes_its_pages_and_fields(url):
    with ResultStore(url) as store:
        store.save(tally())
        with store.engine.begin() as connection:
            connection.execute(delete(SubmissionRow))
        assert (rows(store, PageRow), rows(store, FieldRow)) == (0, 0)


def test_migrations_match_the_models(url):
    with ResultStore(url) as store, store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_sqlite_runs_in_wal_mode(tmp_path):
    with ResultStore(default_url(tmp_path / "results.db")) as store, store.engine.connect() as connection:
        assert connection.scalar(text("PRAGMA journal_mode")) == "wal"


@pytest.mark.parametrize("unreachable", ["sqlite:////no/such/dir/results.db",
                                         "postgresql+psycopg://formc@/results?host=/no/such/dir&port=5432"])
def test_a_database_that_cannot_be_reached_says_so(unreachable):
    with pytest.raises(StoreUnavailable, match="cannot open the results database"):
        ResultStore(unreachable)

"""The results database on a real SQLite file and a real PostgreSQL server (conftest's `postgres_url`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, delete, event, func, insert, select, text

from ocr.db.store import ResultStore, StoreUnavailable, default_url, migrate
from ocr.db.tables import Base, DeliveryRow, FieldRow, PageRow, SubmissionRow, UserRow
from ocr.record import (
    Alternative,
    DigitRead,
    ErrorRecord,
    FieldResult,
    PageQuality,
    PageResult,
    RuleCheck,
    SubmissionResult,
    TallyCount,
    error_result,
    photos_key,
)

PHOTOS = ["a" * 64, "b" * 64]
PAGE_HASH = "f1869c3073869e7973c69e79718f8e6998c371c69c3161c38c3873859c2c71b7"
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
        # A row sum with its row's marks (schema 3): the tally is a JSON column of its own.
        "suara_paslon_1_baris_2": FieldResult(value=12, confidence=0.97, status="ok", read_value=12,
                                              digits=digits("1", "2"), page=2,
                                              tally=TallyCount(status="counted", count=12, p=0.912345,
                                                               cells=["5", "5", "2", "0"])),
    }
    pages = [
        PageResult(source="tps-0001/page-2.jpg", sha256=PHOTOS[0], page=2, status="read",
                   quality=PageQuality(markers_found=4, tag_read=True, residual_mm=0.37, page_fraction=0.81,
                                       sharpness=0.62, paper_level=214, boxes_seen=0.97),
                   photo_hash=PAGE_HASH),  # schema 4: a column of its own
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
        return list(connection.scalars(select(SubmissionRow.id).order_by(SubmissionRow.id)))


def test_round_trip_and_replace_by_submission_and_photos(url):
    first = tally()
    with ResultStore(url) as store:
        store.save(first)
        assert store.get("tps-0001", first.photos_key) == first
        assert list(store.get("tps-0001", first.photos_key).fields) == list(first.fields)  # the template's order
        with store.engine.connect() as connection:  # fields with no tally hold SQL NULL, not JSON 'null'
            assert connection.scalar(select(func.count()).where(FieldRow.tally.is_(None))) == 4
        first_id = submission_ids(store)
        assert store.get("tps-0001", "0" * 64) is None

        # The same photos again (a resumed batch, a redelivered task): replaced, never added.
        second = tally(status="ok", paslon_1=71)
        second.fields.pop("suara_sah")
        store.save(second)
        assert store.get("tps-0001", second.photos_key) == second
        assert (rows(store, SubmissionRow), rows(store, PageRow), rows(store, FieldRow)) == (1, 2, 4)
        assert submission_ids(store) == first_id  # updated in place: the review app's links survive

        failed = error_result("tps-0002", ["tps-0002/page-1.jpg"], ["c" * 64], "internal_error", "worker crashed")
        store.save_many([failed, second])
        assert store.keys() == {("tps-0001", second.photos_key), ("tps-0002", failed.photos_key)}
        assert store.count_by_status() == {"ok": 1, "error": 1}

    # Opening an existing database runs the migrations again as a no-op and finds the data.
    with ResultStore(url) as store:
        assert store.get("tps-0001", second.photos_key) == second
        assert store.get("tps-0002", failed.photos_key) == failed


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
        assert (rows(store, SubmissionRow), rows(store, PageRow), rows(store, FieldRow)) == (1, 2, 5)
        assert store.get("tps-0001", photos_key(PHOTOS, SOURCES)).fields["suara_paslon_1"].value in range(20)


def test_deleting_a_submission_deletes_its_pages_and_fields(url):
    with ResultStore(url) as store:
        store.save(tally())
        with store.engine.begin() as connection:
            connection.execute(delete(SubmissionRow))
        assert (rows(store, PageRow), rows(store, FieldRow)) == (0, 0)


def test_migrations_match_the_models(url):
    with ResultStore(url) as store:
        assert_tables_match_models(store)


def test_sqlite_runs_in_wal_mode(tmp_path):
    with ResultStore(default_url(tmp_path / "results.db")) as store, store.engine.connect() as connection:
        assert connection.scalar(text("PRAGMA journal_mode")) == "wal"


@pytest.mark.parametrize("unreachable", ["sqlite:////dev/null/results.db",  # a folder that cannot be made
                                         "postgresql+psycopg://formc@/results?host=/no/such/dir&port=5432"])
def test_a_database_that_cannot_be_reached_says_so(unreachable):
    with pytest.raises(StoreUnavailable, match="cannot open the results database"):
        ResultStore(unreachable)


def test_identical_photos_under_two_names_are_two_rows(url):
    # Two TPS sent the same photos: two JSONL lines, so two rows; neither overwrites the other.
    first, twin = tally(), tally(status="ok", paslon_1=71).model_copy(update={"submission": "tps-0009"})
    with ResultStore(url) as store:
        store.save_many([first, twin])
        assert store.keys() == {("tps-0001", first.photos_key), ("tps-0009", first.photos_key)}
        assert store.get("tps-0001", first.photos_key) == first and store.get("tps-0009", first.photos_key) == twin
        assert (rows(store, SubmissionRow), rows(store, PageRow), rows(store, FieldRow)) == (2, 4, 10)
        twin_id = submission_ids(store)[1]
        again = twin.model_copy(update={"status": "review"})
        store.save(again)  # the same pair again: replaced in place
        assert store.get("tps-0009", first.photos_key) == again and submission_ids(store)[1] == twin_id
        assert store.get("tps-0001", first.photos_key) == first and rows(store, SubmissionRow) == 2


def test_twins_count_their_deliveries_apart(url):
    with ResultStore(url) as store:
        assert [store.count_delivery("tps-1", "a" * 64) for _ in range(2)] == [1, 2]
        assert store.count_delivery("tps-2", "a" * 64) == 1
        store.clear_deliveries("tps-1", "a" * 64)
        assert store.count_delivery("tps-1", "a" * 64) == 1 and store.count_delivery("tps-2", "a" * 64) == 2
        store.clear_deliveries("tps-1", "a" * 64)
        store.clear_deliveries("tps-2", "a" * 64)
        assert rows(store, DeliveryRow) == 0  # (the PostgreSQL database is the session's: the cluster tests count on it)


def assert_tables_match_models(store: ResultStore) -> None:
    """The migrated database has exactly the tables and columns the models declare."""
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


@contextmanager
def as_of(revision: str, url: str, record: dict) -> Iterator[Connection]:
    """A connection to a new database at `revision` (0004 to 0009) that holds `record` as formc of that revision
    wrote it: no tally column, no quality, geometry or page hash."""
    engine = create_engine(url)
    event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA foreign_keys=ON"))
    try:
        with engine.begin() as connection:
            migrate(connection, revision)
            submission_id = connection.execute(insert(SubmissionRow).values(
                {c: record[c] for c in ("photos_key", "submission", "template", "status", "reasons", "checks",
                                        "timings_ms")}
            ).returning(SubmissionRow.id)).scalar_one()
            connection.execute(insert(PageRow), [{**{c: v for c, v in p.items() if c != "photo_hash"},
                                                  "submission_id": submission_id, "position": i, "quality": None,
                                                  "geometry": None} for i, p in enumerate(record["pages"])])
            connection.execute(insert(FieldRow), [{**{c: v for c, v in f.items() if c != "tally"},
                                                   "submission_id": submission_id, "field_id": k}
                                                  for k, f in record["fields"].items()])
            yield connection
    finally:
        engine.dispose()


def test_a_database_of_revision_0004_with_rows_is_upgraded_keeping_them(tmp_path):
    url = default_url(tmp_path / "old.db")
    record = tally().model_dump(mode="json")
    with as_of("0004", url, record) as connection:
        connection.execute(text("INSERT INTO deliveries VALUES (:key, 0, 2)"), {"key": record["photos_key"]})
    with ResultStore(url) as store:  # upgraded on open: copying the table lost none of its pages or fields
        stored = store.get("tps-0001", record["photos_key"])
        assert (rows(store, PageRow), rows(store, FieldRow)) == (2, 5) and stored.fields.keys() == record["fields"].keys()
        store.save(tally().model_copy(update={"submission": "tps-0009"}))  # a twin is a row of its own now
        assert rows(store, SubmissionRow) == 2 and store.count_delivery("tps-0001", record["photos_key"]) == 1
        assert_tables_match_models(store)
        with store.engine.connect() as connection:
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1  # on again after the upgrade


def test_a_database_of_revision_0005_with_rows_gets_tallies_and_keeps_its_fields(tmp_path):
    url = default_url(tmp_path / "old.db")
    record = tally().model_dump(mode="json")
    with as_of("0005", url, record):
        pass
    with ResultStore(url) as store:
        stored = store.get("tps-0001", record["photos_key"])
        # Saved before schema 3: the row sum has no tally, all else is as it was.
        assert stored.fields["suara_paslon_1_baris_2"].tally is None
        assert stored.fields == {k: f.model_copy(update={"tally": None}) for k, f in tally().fields.items()}
        store.save(tally())
        assert store.get("tps-0001", record["photos_key"]) == tally() and rows(store, FieldRow) == 5
        assert_tables_match_models(store)


def test_a_database_of_revision_0006_with_accounts_gets_sessions_and_keeps_its_users(tmp_path):
    from ocr.review.accounts import Accounts, authenticate, hash_password

    url = default_url(tmp_path / "old.db")
    with as_of("0006", url, tally().model_dump(mode="json")) as connection:
        connection.execute(insert(UserRow).values(name="ade", role="admin", password_hash=hash_password("a long password"),
                                                  active=True))
    with ResultStore(url) as store:
        accounts = Accounts(store)
        assert [(a.name, a.role, a.active, a.last_login) for a in accounts.accounts()] == [("ade", "admin", True, None)]
        user = authenticate(accounts, "ade", "a long password")
        session_id = accounts.start_session(user, "10.0.0.1")
        assert accounts.session_user(session_id) == user and accounts.accounts()[0].last_login is not None
        assert store.keys() == {("tps-0001", tally().photos_key)} and rows(store, FieldRow) == 5
        assert_tables_match_models(store)


def test_a_database_of_revision_0007_gets_page_hashes_and_keeps_its_pages(tmp_path):
    url = default_url(tmp_path / "old.db")
    record = tally().model_dump(mode="json")
    with as_of("0007", url, record):
        pass
    with ResultStore(url) as store:
        # Saved before schema 4: no page has a hash, and `formc integrity` finds none to compare.
        assert [p.photo_hash for p in store.get("tps-0001", record["photos_key"]).pages] == [None, None]
        assert store.page_hashes() == []
        store.save(tally())
        assert store.get("tps-0001", record["photos_key"]) == tally() and rows(store, PageRow) == 2
        assert_tables_match_models(store)


def test_a_database_of_revision_0009_gets_places_and_a_registry_and_keeps_its_rows(tmp_path):
    from ocr.db.regions import Regions
    from ocr.record import TpsIdentity

    url = default_url(tmp_path / "old.db")
    record = tally().model_dump(mode="json")
    with as_of("0009", url, record):
        pass
    with ResultStore(url) as store:
        # Saved before schema 5: no place; the registry is filled from the official list when first used.
        stored = store.get("tps-0001", record["photos_key"])
        assert stored.place is None and stored.fields.keys() == tally().fields.keys() and rows(store, FieldRow) == 5
        assert [r.name for r in Regions(store.engine).chain("3204052001")] == [
            "Jawa Barat", "Kabupaten Bandung", "Cileunyi", "Cileunyi Kulon"]
        placed = tally().model_copy(update={"place": TpsIdentity(desa="3204052001", tps=3, election="bupati")})
        store.save(placed)
        assert store.get("tps-0001", record["photos_key"]) == placed and rows(store, SubmissionRow) == 1
        assert_tables_match_models(store)


def test_a_database_of_revision_0010_gets_tps_counts_and_the_recap_indexes_and_keeps_its_rows(tmp_path):
    from ocr.db.regions import Regions
    from ocr.db.tables import TpsCountRow

    url = default_url(tmp_path / "old.db")
    record = tally().model_dump(mode="json")
    with as_of("0010", url, record):
        pass
    with ResultStore(url) as store:
        assert store.get("tps-0001", record["photos_key"]).fields.keys() == tally().fields.keys()
        assert Regions(store.engine).load_tps_counts({"3204052001": 7}) == 1 and rows(store, TpsCountRow) == 1
        assert_tables_match_models(store)


def test_page_hashes_are_read_without_the_records(url):
    with ResultStore(url) as store:
        store.save(tally())
        store.save(error_result("tps-0002", ["tps-0002/page-1.jpg"], ["c" * 64], "internal_error", "worker crashed"))
        # Only the aligned page of a read submission has a hash.
        assert store.page_hashes() == [("tps-0001", "tps-0001/page-2.jpg", "kwk-gubernur-3", 2, PAGE_HASH)]


def test_a_file_that_is_not_a_database_or_a_directory_is_refused_in_one_line(tmp_path):
    (tmp_path / "junk.db").write_bytes(bytes(range(256)) * 16)
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(StoreUnavailable, match=r"^cannot open the results database .*junk.db.*: file is not a database$"):
        ResultStore(default_url(tmp_path / "junk.db"))
    with pytest.raises(StoreUnavailable, match=r"^cannot open the results database .*folder.db.*: unable to open"):
        ResultStore(default_url(tmp_path / "folder.db"))


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` made read-only: by its mode and, for root (whom modes do not stop), as an immutable file."""
    path.chmod(0o444)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root where chattr +i is not available: a file cannot be made read-only")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o644)


def test_a_read_only_database_is_refused_at_open_and_at_a_save(tmp_path):
    url = default_url(tmp_path / "results.db")
    with ResultStore(url) as store:
        store.save(tally())
    with ResultStore(url) as store, read_only(tmp_path / "results.db"):
        with pytest.raises(StoreUnavailable, match="^cannot open the results database .*: attempt to write a readonly"):
            ResultStore(url)
        # Opened before it became read-only: the pool's next connection finds it so, and the save says it.
        store.engine.dispose()
        with pytest.raises(StoreUnavailable, match="^cannot save in the results database .*: attempt to write a readonly"):
            store.save(tally(status="ok"))
        assert store.get("tps-0001", tally().photos_key) == tally()  # reading still works

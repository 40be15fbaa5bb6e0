"""The results database: `SubmissionResult`s kept in SQLite or PostgreSQL, one row per (submission, photos_key).

Identical photos under two submission names are two rows, as they are two JSONL lines (`ocr/run/twins.py` flags the
second). Saving a pair again replaces that submission's pages and fields, so a resumed batch or a redelivered task
never adds a second copy. The schema comes from the Alembic migrations in `ocr/db/migrations`, run on open.
What people add (accounts, corrections, verification, the audit log: the review app, `ocr/review/workflow.py`) lives in
tables of its own, which a save never touches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, selectinload

from ocr.db.tables import (
    Base,
    DeliveryRow,
    FieldRow,
    PageRow,
    SubmissionRow,
)
from ocr.record import SubmissionResult, TpsIdentity

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Dialects with INSERT .. ON CONFLICT: the upsert that keeps two workers saving one key from colliding.
UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
PLACE_NONE = dict.fromkeys(TpsIdentity.model_fields)  # the place columns of a submission without one
MIGRATION_LOCK = 0x666F726D63  # "formc": the PostgreSQL advisory lock held while migrating


def _columns(table: type, record: dict[str, Any], skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The values of `table`'s columns in a record (or one of its pages or fields), by name."""
    return {c: record[c] for c in table.__table__.columns.keys() if c in record and c not in skip}


def _values(row: Base) -> dict[str, Any]:
    """A row's columns by name, as the record reads them back."""
    return {c: getattr(row, c) for c in row.__table__.columns.keys()}


class StoreUnavailable(RuntimeError):
    """The database cannot be used: unreachable, not a database, read-only or full (the message says which)."""


def default_url(path: str | Path) -> str:
    """SQLAlchemy URL of an SQLite file, e.g. `default_url("out/results.db")`."""
    return f"sqlite:///{Path(path).resolve()}"


def migrate(connection: Connection, revision: str = "head") -> None:
    """Brings the schema on `connection` to the newest migration, or to `revision` (a no-op when it is there already)."""
    if connection.dialect.name == "postgresql":
        # Workers opening a fresh database at once: one migrates, the others wait for its commit and find it done.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _open(engine: Engine) -> None:
    """Migrates the database at `engine` and, for SQLite, checks that it can be written."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # SQLite changes a constraint by copying its table: with foreign keys on, dropping the old copy would
            # delete its pages, fields and reviews (ON DELETE CASCADE). Set before any write: in a transaction it is ignored.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        migrate(connection)
        if sqlite:  # a read-only file fails here, at open, rather than at the batch's first save
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
        connection.commit()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite (the cascade needs them); WAL lets readers run beside a writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class ResultStore:
    """Results by (submission, photos_key) in the database at `url` (`sqlite:///...` or `postgresql+psycopg://...`)."""

    def __init__(self, url: str) -> None:
        # pre_ping: a connection the server dropped (restart, failover) is replaced instead of failing the next query.
        self.engine = create_engine(url, pool_pre_ping=True)
        dialect = self.engine.dialect.name
        if dialect not in UPSERTS:
            self.engine.dispose()
            raise ValueError(f"results database must be SQLite or PostgreSQL, not {dialect} ({self.engine.url!r})")
        if dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._upsert = UPSERTS[dialect]
        with self._usable("cannot open the results database"):
            if dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
                Path(self.engine.url.database).parent.mkdir(parents=True, exist_ok=True)  # as --out gets its folder
            _open(self.engine)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def save(self, result: SubmissionResult, replaces: int | None = None) -> None:
        """Stores `result`, replacing whatever was stored under its (submission, photos_key). `replaces`: the id of a
        row of the same submission read from fewer photos (the review app completing a TPS with a page uploaded
        later); that row takes the result's photos_key first, so it keeps its id, review state, corrections and log."""
        with self._usable("cannot save in the results database"), Session(self.engine) as session, session.begin():
            if replaces is not None:
                session.execute(update(SubmissionRow).where(SubmissionRow.id == replaces,
                                                            SubmissionRow.submission == result.submission)
                                .values(photos_key=result.photos_key))
            self.replace(session, result)

    def save_many(self, results: Iterable[SubmissionResult]) -> None:
        """Stores every result in one transaction: all of them or, on an error, none."""
        with self._usable("cannot save in the results database"), Session(self.engine) as session, session.begin():
            for result in results:
                self.replace(session, result)

    @contextmanager
    def _usable(self, what: str) -> Iterator[None]:
        """Raises StoreUnavailable, one line saying `what` failed and why, when the database is unreachable,
        read-only, full or not a database at all; a statement's own error (a bug) passes as it is."""
        try:
            yield
        except (DatabaseError, OSError) as e:  # OSError: the SQLite file's folder cannot be made
            if isinstance(e, DatabaseError) and type(e) not in (OperationalError, DatabaseError):
                raise
            self.engine.dispose()
            why = e.orig if isinstance(e, DatabaseError) else e
            raise StoreUnavailable(f"{what} {self.engine.url!r}: {' '.join(str(why).split())}") from e

    def replace(self, session: Session, result: SubmissionResult) -> int:
        """Stores `result` as `save` does, inside the caller's transaction on `session` (a sync import writes a
        submission and what people added to it at once); the row's id."""
        record = result.model_dump(mode="json")  # columns are named as the record's keys: no mapping by hand
        row = _columns(SubmissionRow, {**record, **(record["place"] or PLACE_NONE)},
                       skip={"id", "photos_key", "created_at", "updated_at"})
        upsert = self._upsert(SubmissionRow).values(photos_key=result.photos_key, **row)
        # Updating in place keeps the submission's id (and created_at) stable across saves.
        upsert = upsert.on_conflict_do_update(index_elements=[SubmissionRow.submission, SubmissionRow.photos_key],
                                              set_=dict(row, updated_at=func.now()))
        submission_id = session.execute(upsert.returning(SubmissionRow.id)).scalar_one()
        session.execute(delete(PageRow).where(PageRow.submission_id == submission_id))
        session.execute(delete(FieldRow).where(FieldRow.submission_id == submission_id))
        if record["pages"]:
            session.execute(insert(PageRow), [_columns(PageRow, dict(p, submission_id=submission_id, position=i))
                                              for i, p in enumerate(record["pages"])])
        if record["fields"]:
            session.execute(insert(FieldRow), [_columns(FieldRow, dict(f, submission_id=submission_id, field_id=k))
                                               for k, f in record["fields"].items()])
        return submission_id

    def get(self, submission: str, photos_key: str) -> SubmissionResult | None:
        """The result stored for `submission` with these photos, equal to the one saved; None when there is none."""
        return self._get((SubmissionRow.submission == submission) & (SubmissionRow.photos_key == photos_key))

    def get_by_id(self, submission_id: int) -> SubmissionResult | None:
        """The result of the submission row `submission_id` (the review app's handle on it); None when there is none."""
        return self._get(SubmissionRow.id == submission_id)

    def _get(self, where: Any) -> SubmissionResult | None:
        with Session(self.engine) as session:
            row = session.scalar(select(SubmissionRow).where(where)
                                 .options(selectinload(SubmissionRow.pages), selectinload(SubmissionRow.fields)))
            if row is None:
                return None
            # The record ignores the columns it does not have (ids, timestamps).
            place = None if row.desa is None else TpsIdentity(desa=row.desa, tps=row.tps, election=row.election)
            return SubmissionResult.model_validate(dict(
                _values(row), place=place, pages=[_values(p) for p in row.pages],
                fields={f.field_id: _values(f) for f in row.fields}))

    def count_delivery(self, submission: str, photos_key: str, retry: int = 0) -> int:
        """Counts one more delivery of the task reading `submission` (its `retry`-th retry); this delivery's number."""
        upsert = self._upsert(DeliveryRow).values(submission=submission, photos_key=photos_key, retry=retry, count=1)
        upsert = upsert.on_conflict_do_update(index_elements=[DeliveryRow.submission, DeliveryRow.photos_key,
                                                              DeliveryRow.retry],
                                              set_={"count": DeliveryRow.count + 1})
        with self.engine.begin() as connection:  # one statement: two workers counting at once both count
            return connection.execute(upsert.returning(DeliveryRow.count)).scalar_one()

    def clear_deliveries(self, submission: str, photos_key: str) -> None:
        """Forgets the deliveries of `submission`: its read finished."""
        with self.engine.begin() as connection:
            connection.execute(delete(DeliveryRow).where(DeliveryRow.submission == submission,
                                                         DeliveryRow.photos_key == photos_key))

    def keys(self) -> set[tuple[str, str]]:
        """(submission, photos_key) of every stored submission: what a resumed batch can skip."""
        with Session(self.engine) as session:
            return {(name, key) for name, key in session.execute(select(SubmissionRow.submission, SubmissionRow.photos_key))}

    def page_hashes(self) -> list[tuple[str, str, str, int, str]]:
        """(submission, source, template, page, photo_hash) of every stored page that has a hash, without loading
        the records (`formc integrity --db`)."""
        query = (select(SubmissionRow.submission, PageRow.source, SubmissionRow.template, PageRow.page, PageRow.photo_hash)
                 .join(PageRow, PageRow.submission_id == SubmissionRow.id)
                 .where(PageRow.photo_hash.is_not(None), PageRow.page.is_not(None), SubmissionRow.template.is_not(None)))
        with self._usable("cannot read the results database"), Session(self.engine) as session:
            return [tuple(row) for row in session.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        """Stored submissions per status (ok, review, incomplete, rejected, error); statuses with none are left out."""
        with Session(self.engine) as session:
            rows = session.execute(select(SubmissionRow.status, func.count()).group_by(SubmissionRow.status))
            return {status: count for status, count in rows}

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
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
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
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

from ocr.record import SubmissionResult, TpsIdentity

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Dialects with INSERT .. ON CONFLICT: the upsert that keeps two workers saving one key from colliding.
UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
PLACE_NONE = dict.fromkeys(TpsIdentity.model_fields)  # the place columns of a submission without one
MIGRATION_LOCK = 0x666F726D63  # "formc": the PostgreSQL advisory lock held while migrating


class Base(DeclarativeBase):
    # Fixed constraint names, so the migrations can name (and later drop) exactly what the models declare.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


def _columns(table: type, record: dict[str, Any], skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The values of `table`'s columns in a record (or one of its pages or fields), by name."""
    return {c: record[c] for c in table.__table__.columns.keys() if c in record and c not in skip}


def _values(row: Base) -> dict[str, Any]:
    """A row's columns by name, as the record reads them back."""
    return {c: getattr(row, c) for c in row.__table__.columns.keys()}


class SubmissionRow(Base):
    __tablename__ = "submissions"
    # (election, desa, tps, id): a recap finds each TPS's newest read from the index alone (migration 0011).
    __table_args__ = (UniqueConstraint("submission", "photos_key"),
                      Index("ix_submissions_place", "election", "desa", "tps", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photos_key: Mapped[str] = mapped_column(String(64), index=True)
    submission: Mapped[str] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    schema_version: Mapped[int] = mapped_column(Integer, server_default="1")
    reader_version: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON)
    # The record's `place`, flat: recaps group by the desa code's prefixes in SQL. NULL: a submission without one.
    desa: Mapped[str | None] = mapped_column(String(10), index=True)
    tps: Mapped[int | None] = mapped_column(Integer)
    election: Mapped[str | None] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # The database deletes a submission's pages and fields (ON DELETE CASCADE); the ORM need not load them first.
    pages: Mapped[list[PageRow]] = relationship(order_by="PageRow.position", cascade="all, delete-orphan",
                                                passive_deletes=True)
    fields: Mapped[list[FieldRow]] = relationship(order_by="FieldRow.id", cascade="all, delete-orphan",
                                                  passive_deletes=True)


class RegionRow(Base):
    """A Kemendagri region (`ocr/db/regions.py`): province, kabupaten/kota, kecamatan or kelurahan/desa."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)  # digits only: 32, 3204, 320405, 3204052001
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer, index=True)  # the code's length: 2, 4, 6 or 10


class TpsCountRow(Base):
    """How many TPS a kelurahan/desa has (`formc regions tps-import`): a recap's expected count; the registry has none."""

    __tablename__ = "tps_counts"

    desa: Mapped[str] = mapped_column(String(10), primary_key=True)  # 10 digits, no dots
    count: Mapped[int] = mapped_column(Integer)


class PageRow(Base):
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    page: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # SQL NULL rather than JSON 'null' for a page that was never measured.
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # NULL for a page not aligned (and for pages saved before schema 4).
    photo_hash: Mapped[str | None] = mapped_column(String(64))


class FieldRow(Base):
    __tablename__ = "fields"
    # (submission_id, field_id, value): a recap sums the values from the index alone (migration 0011).
    __table_args__ = (UniqueConstraint("submission_id", "field_id"),
                      Index("ix_fields_recap", "submission_id", "field_id", "value"))

    # Rows are inserted in the result's field order, so `id` keeps that order for the round trip.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    field_id: Mapped[str] = mapped_column(String(100))
    value: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    read_value: Mapped[int | None] = mapped_column(Integer)
    digits: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    alternatives: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    page: Mapped[int] = mapped_column(Integer)
    # SQL NULL for the fields that are not row sums (and for rows saved before schema 3).
    tally: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class UserRow(Base):
    """An account of the review app; never deleted (the audit log names it), only deactivated."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # operator | reviewer | admin
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SessionRow(Base):
    """A log-in to the review app. The cookie carries a random session id; this row keeps only its sha256, so a
    copy of the table cannot be replayed as a cookie. Log-out, expiry or revocation ends it on every worker at once."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    address: Mapped[str] = mapped_column(String(64))  # the client's IP address at log-in
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailureRow(Base):
    """A failed log-in, counted per user name and per client address to throttle guessing (`ocr/review/throttle.py`);
    kept in the database so that the limits hold across workers and restarts."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    name: Mapped[str] = mapped_column(String(100), index=True)  # as typed: an unknown name counts too
    address: Mapped[str] = mapped_column(String(64), index=True)


class ReviewRow(Base):
    """The people's side of a submission: who uploaded it, and whether (and by whom) it was verified and locked.

    A submission without a row (saved by `formc batch`) is open and has no uploader."""

    __tablename__ = "reviews"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | verified
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CorrectionRow(Base):
    """A reviewer's value for a field; the newest one per field is its effective value, the machine's stays as read."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    field_id: Mapped[str] = mapped_column(String(100))
    old_value: Mapped[int | None] = mapped_column(Integer)
    new_value: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditRow(Base):
    """One action by a person (log-in, upload, correction, verification, reopening, export, new account).

    `submission_id` has no foreign key: the log outlives what it names; `detail` repeats what changed."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    submission_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class ExternalSourceRow(Base):
    """A TPS's numbers from outside (`formc sources import`, e.g. KPU's published per-TPS figures): a source compared
    with the TPS's reads, never its result by itself (`ocr/review/sources.py`). One row per (source, TPS)."""

    __tablename__ = "external_sources"
    __table_args__ = (UniqueConstraint("source", "tps_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))  # the import's --source-name
    tps_key: Mapped[str] = mapped_column(Text, index=True)  # `ocr/review/sources.py` tps_key: place, else name
    template: Mapped[str] = mapped_column(String(100))
    values: Mapped[dict[str, int | None]] = mapped_column(JSON)  # field id -> value, only the fields mapped
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SourceChoiceRow(Base):
    """A reviewer's choice of a TPS's result among its sources; the newest choice per TPS holds."""

    __tablename__ = "source_choices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tps_key: Mapped[str] = mapped_column(Text, index=True)
    chosen: Mapped[str] = mapped_column(String(40))  # a source's ref: submission:<id> or external:<id>
    reason: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeliveryRow(Base):
    """How often the cluster's task for a submission was delivered without finishing, per retry of that task: a
    worker killed mid-read leaves its count up; a finished read deletes the submission's rows."""

    __tablename__ = "deliveries"

    submission: Mapped[str] = mapped_column(Text, primary_key=True)  # twins (the same photos) count apart
    photos_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    retry: Mapped[int] = mapped_column(Integer, primary_key=True)  # a retry after a database error counts afresh
    count: Mapped[int] = mapped_column(Integer)


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
            self._replace(session, result)

    def save_many(self, results: Iterable[SubmissionResult]) -> None:
        """Stores every result in one transaction: all of them or, on an error, none."""
        with self._usable("cannot save in the results database"), Session(self.engine) as session, session.begin():
            for result in results:
                self._replace(session, result)

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

    def _replace(self, session: Session, result: SubmissionResult) -> None:
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

"""The results database's tables (SQLAlchemy models): what the migrations in `ocr/db/migrations` create and
`tests/db/test_store.py` checks them against. The reader's results (submissions, pages, fields, deliveries), the
region registry and TPS counts, and what people add (accounts, sessions, log-in failures, reviews, corrections,
the audit log, external sources and choices), and offline offices' sync (trusted keys, bundles, the import ledger).
`ocr/db/store.py` reads and writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    # Fixed constraint names, so the migrations can name (and later drop) exactly what the models declare.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


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


class SyncKeyRow(Base):
    """An office's Ed25519 public key that the centre trusts (`formc sync trust`): bundles signed by it are imported."""

    __tablename__ = "sync_keys"

    office: Mapped[str] = mapped_column(String(40), primary_key=True)  # the bundle's origin
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the 32 raw bytes
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SyncBundleRow(Base):
    """A sync bundle this database wrote (an office's export: where `--since last` starts) or imported whole."""

    __tablename__ = "sync_bundles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the manifest's bundle id
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)  # export | import
    origin: Mapped[str] = mapped_column(String(40), index=True)
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the export read the office's database
    submissions: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SyncLedgerRow(Base):
    """What an import took from an office, one row per office row (submission, correction, audit entry): the
    identity that makes a second import of it a no-op. Written in the transaction that merges it."""

    __tablename__ = "sync_ledger"

    origin: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # submission | correction | audit
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)  # the office's id of the row
    local_id: Mapped[int | None] = mapped_column(Integer)  # the centre's row; NULL: a correction held as a conflict
    digest: Mapped[str | None] = mapped_column(String(64))  # a submission: sha256 of its bundle member
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a submission: its bundle's until

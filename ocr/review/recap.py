"""Recapitulation (issue 20): one election's totals at one level (province, kabupaten/kota, kecamatan, kelurahan/desa)
inside a region, in the shape of the D.Hasil recap forms: a column per paslon, suara sah, tidak sah, total, DPT and
pengguna; the verified values beside every machine read; TPS expected, received, verified, in review, rejected.

A TPS is a (desa, TPS number) of the election. Its machine values are those of its newest read; its verified values
those of its newest verified submission, each field's newest correction else the machine's value. Everything is
summed in SQL, grouped by the desa code's prefix (`substr(desa, 1, n)`), over the index (election, desa, tps, id)
(migration 0011): no Python loop over the TPS.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from defusedcsv import csv  # region names come from an imported list: a formula-like one is quoted as text
from sqlalchemy import Connection, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import aliased

from ocr.db.regions import DESA_DIGITS, Region, Regions, code_range
from ocr.db.store import ResultStore
from ocr.db.tables import CorrectionRow, FieldRow, ReviewRow, SubmissionRow, TpsCountRow
from ocr.review.audit import utc
from ocr.review.dashboard import ballot_order, vote_fields
from ocr.review.errors import ReviewError

LEVELS = {"provinsi": 2, "kabupaten": 4, "kecamatan": 6, "desa": DESA_DIGITS}  # level name -> code digits
TOTAL_FIELDS = ("suara_sah", "suara_tidak_sah", "suara_total", "dpt_j", "pengguna_total_j")  # after the paslon
NOT_COUNTED = ("rejected", "error")  # a TPS whose newest read is one of these (and none verified) is rejected


@dataclass(frozen=True)
class TpsCounts:
    expected: int | None  # from `formc regions tps-import`; None where no desa of the region was listed
    received: int
    verified: int
    rejected: int

    @property
    def in_review(self) -> int:
        return self.received - self.verified - self.rejected


@dataclass(frozen=True)
class TpsState:
    """One TPS of a desa as the public site lists it."""

    number: int
    verified: int | None  # its newest verified submission's id; None: none verified yet
    state: str  # verified | in_review | rejected


@dataclass(frozen=True)
class ProblemTps:
    """A TPS that needs a reviewer: read, none of its submissions verified (in review or rejected)."""

    desa: str
    number: int
    submission: int  # its newest read: what a reviewer opens


@dataclass(frozen=True)
class RecapRow:
    region: Region
    tps: TpsCounts
    verified: dict[str, int] = field(default_factory=dict)  # column -> sum over the verified TPS
    machine: dict[str, int] = field(default_factory=dict)  # column -> sum over every TPS's newest read


@dataclass(frozen=True)
class Recap:
    election: str
    level: str
    within: list[Region]  # the region recapped and those above it, province first; empty: the whole country
    columns: list[str]
    rows: list[RecapRow]
    total: RecapRow

    def as_json(self) -> dict[str, Any]:
        def row(r: RecapRow) -> dict[str, Any]:
            return {"code": r.region.code, "name": r.region.name,
                    "tps": {"expected": r.tps.expected, "received": r.tps.received, "verified": r.tps.verified,
                            "in_review": r.tps.in_review, "rejected": r.tps.rejected},
                    "verified": {c: r.verified.get(c, 0) for c in self.columns},
                    "machine": {c: r.machine.get(c, 0) for c in self.columns}}

        return {"election": self.election, "level": self.level,
                "region": {"code": self.within[-1].code, "name": self.within[-1].name} if self.within else None,
                "columns": self.columns, "rows": [row(r) for r in self.rows], "total": row(self.total)}

    def as_csv(self) -> str:
        """One line per region, the region itself last: the TPS counts, each column verified, then by machine."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "name", "tps_expected", "tps_received", "tps_verified", "tps_in_review",
                         "tps_rejected", *(f"verified_{c}" for c in self.columns),
                         *(f"machine_{c}" for c in self.columns)])
        writer.writerows([r.region.code, r.region.name, "" if r.tps.expected is None else r.tps.expected,
                          r.tps.received, r.tps.verified, r.tps.in_review, r.tps.rejected,
                          *(r.verified.get(c, 0) for c in self.columns), *(r.machine.get(c, 0) for c in self.columns)]
                         for r in [*self.rows, self.total])
        return out.getvalue()


def _per_tps(election: str, code: str) -> Any:
    """Each TPS of the election inside `code`: its desa and number, newest read and newest verified submission (NULL: none)."""
    verified = case((ReviewRow.state == "verified", SubmissionRow.id), else_=None)
    return (select(SubmissionRow.desa, SubmissionRow.tps, func.max(SubmissionRow.id).label("latest"),
                   func.max(verified).label("verified"))
            .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)
            .where(SubmissionRow.election == election, code_range(SubmissionRow.desa, code, DESA_DIGITS))
            .group_by(SubmissionRow.desa, SubmissionRow.tps).subquery())


def _sums(connection: Connection, query: Select) -> dict[str, dict[str, int]]:
    """(area, column, sum) rows -> area -> column -> sum."""
    sums: dict[str, dict[str, int]] = {}
    for area, column, total in connection.execute(query):
        sums.setdefault(area, {})[column] = total or 0
    return sums


def recap(store: ResultStore, regions: Regions, election: str, level: str, code: str = "",
          verified_only: bool = False) -> Recap:
    """The recap of `election` at `level` (a key of LEVELS) inside region `code` ("": the whole country), named by
    `regions` (the registry of the same database). `verified_only`: no machine sums (the public site shows none, and
    they cost most: every TPS's read against the verified ones' alone)."""
    digits = LEVELS[level]
    within = regions.chain(code) if code else []
    if code and not within:
        raise ReviewError("%(code)s is not in the region registry", code=code)
    if digits <= len(code):
        raise ReviewError("%(level)s is not below region %(code)s", level=level, code=code)
    tps = _per_tps(election, code)
    area = func.substr(tps.c.desa, 1, digits).label("area")
    latest = aliased(SubmissionRow)
    fields = (*vote_fields(), *TOTAL_FIELDS)
    rejected = case((and_(tps.c.verified.is_(None), latest.status.in_(NOT_COUNTED)), 1), else_=0)
    counts = (select(area, func.count(), func.count(tps.c.verified), func.sum(rejected))
              .join(latest, latest.id == tps.c.latest).group_by(area))
    expected_area = func.substr(TpsCountRow.desa, 1, digits)
    expected = (select(expected_area, func.sum(TpsCountRow.count))
                .where(code_range(TpsCountRow.desa, code, DESA_DIGITS)).group_by(expected_area))
    machine = (select(area, FieldRow.field_id, func.sum(FieldRow.value))
               .join(FieldRow, FieldRow.submission_id == tps.c.latest)
               .where(FieldRow.field_id.in_(fields)).group_by(area, FieldRow.field_id))
    fix, later = aliased(CorrectionRow), aliased(CorrectionRow)
    # The field's newest correction: joined per field through the corrections' submission index, none newer.
    newer = exists().where(later.submission_id == fix.submission_id, later.field_id == fix.field_id, later.id > fix.id)
    value = case((fix.id.is_not(None), fix.new_value), else_=FieldRow.value)
    checked = (select(area, FieldRow.field_id, func.sum(value))
               .join(FieldRow, FieldRow.submission_id == tps.c.verified)
               .outerjoin(fix, and_(fix.submission_id == FieldRow.submission_id, fix.field_id == FieldRow.field_id,
                                    ~newer))
               .where(FieldRow.field_id.in_(fields)).group_by(area, FieldRow.field_id))
    with store.engine.connect() as connection:
        received = {a: (n, v, r or 0) for a, n, v, r in connection.execute(counts)}
        listed = dict(connection.execute(expected).all())
        verified_sums = _sums(connection, checked)
        machine_sums = {} if verified_only else _sums(connection, machine)
    names = {r.code: r for r in regions.within(code, digits)}
    for unnamed in (received.keys() | listed.keys()) - names.keys():  # a code imported after its results: kept
        names[unnamed] = Region(unnamed, unnamed)
    rows = [RecapRow(names[a], TpsCounts(listed.get(a), *received.get(a, (0, 0, 0))),
                     verified_sums.get(a, {}), machine_sums.get(a, {})) for a in sorted(names)]
    seen = {c for sums in (verified_sums if verified_only else machine_sums).values() for c in sums}
    columns = [*sorted(seen & set(vote_fields()), key=ballot_order), *TOTAL_FIELDS]
    return Recap(election, level, within, columns, rows, _total(within, rows, columns))


def _total(within: list[Region], rows: list[RecapRow], columns: list[str]) -> RecapRow:
    """The sum of the rows (one per region of the level, not per TPS), as the region's own row."""
    listed = [r.tps.expected for r in rows if r.tps.expected is not None]
    tps = TpsCounts(sum(listed) if listed else None, sum(r.tps.received for r in rows),
                    sum(r.tps.verified for r in rows), sum(r.tps.rejected for r in rows))
    return RecapRow(within[-1] if within else Region("", "Indonesia"), tps,
                    {c: sum(r.verified.get(c, 0) for r in rows) for c in columns},
                    {c: sum(r.machine.get(c, 0) for r in rows) for c in columns})


def desa_tps(store: ResultStore, election: str, desa: str) -> list[TpsState]:
    """Every TPS of `election` in `desa` with a read, by number: its newest verified submission and its state."""
    tps = _per_tps(election, desa)
    latest = aliased(SubmissionRow)
    with store.engine.connect() as connection:
        rows = connection.execute(select(tps.c.tps, tps.c.verified, latest.status)
                                  .join(latest, latest.id == tps.c.latest).order_by(tps.c.tps)).all()
    return [TpsState(n, verified, "verified" if verified is not None else "rejected" if status in NOT_COUNTED
                     else "in_review") for n, verified, status in rows]


def last_verified(store: ResultStore, election: str, code: str = "") -> datetime | None:
    """The newest verification of a submission of `election` inside region `code` ("": the country); None: none."""
    with store.engine.connect() as connection:
        newest = connection.scalar(
            select(func.max(ReviewRow.verified_at)).join(SubmissionRow, SubmissionRow.id == ReviewRow.submission_id)
            .where(ReviewRow.state == "verified", SubmissionRow.election == election,
                   code_range(SubmissionRow.desa, code, DESA_DIGITS)))
    return utc(newest)


def next_problem(store: ResultStore, election: str, code: str = "", after: tuple[str, int] | None = None
                 ) -> ProblemTps | None:
    """The first TPS of `election` inside region `code` ("": the country) after (desa, TPS number) `after`, by desa code
    then number, that is read and has no verified submission; None: no more. Asked again with each answer as `after`,
    it walks every such TPS once."""
    verified = case((ReviewRow.state == "verified", 1), else_=None)
    query = (select(SubmissionRow.desa, SubmissionRow.tps, func.max(SubmissionRow.id))
             .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)
             .where(SubmissionRow.election == election, code_range(SubmissionRow.desa, code, DESA_DIGITS))
             .group_by(SubmissionRow.desa, SubmissionRow.tps).having(func.max(verified).is_(None))
             .order_by(SubmissionRow.desa, SubmissionRow.tps).limit(1))
    if after is not None:
        desa, number = after
        query = query.where(or_(SubmissionRow.desa > desa, and_(SubmissionRow.desa == desa, SubmissionRow.tps > number)))
    with store.engine.connect() as connection:
        found = connection.execute(query).first()
    return ProblemTps(*found) if found else None

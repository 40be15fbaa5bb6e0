"""The dashboard's figures: submissions by status and region, reads per hour, review reasons, vote totals, TPS whose
sources disagree.

Vote totals by region put the machine's reads of every submission beside the effective values (newest
correction, else the machine's) of the verified ones. Region: see `ocr.review.workflow.region_of`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

from sqlalchemy import func, select

from ocr.db.store import ResultStore
from ocr.db.tables import CorrectionRow, FieldRow, RegionRow, ReviewRow, SubmissionRow
from ocr.record import Reason
from ocr.review.audit import utc
from ocr.review.conflicts import counts
from ocr.review.workflow import FLAGGED, region_of
from ocr.templates.catalog import load_templates

VOTE_FIELD = re.compile(r"^suara_(paslon_\d+|kolom_kosong)$")  # the per-candidate totals the dashboard adds up


@cache
def vote_fields() -> tuple[str, ...]:
    """The per-candidate total fields of every shipped template."""
    return tuple(sorted({f for t in load_templates().values() for f in t.fields if VOTE_FIELD.match(f)}))


def ballot_order(column: str) -> tuple[bool, int, str]:
    """Sort key of vote columns as the form prints them: paslon 1, 2, ..., 10, then the empty column."""
    return column == "suara_kolom_kosong", len(column), column


def _by_status(subs: list, region: dict[int, str], start: datetime) -> tuple[Counter, dict[str, Counter], Counter]:
    """Submissions by status (`verified` counted as such), the same per region, and reads per hour since `start`."""
    by_status: Counter = Counter()
    by_region: dict[str, Counter] = defaultdict(Counter)
    per_hour = Counter()
    for i, _, status, state, at, *_ in subs:
        label = "verified" if state == "verified" else status
        by_status[label] += 1
        by_region[region[i]][label] += 1
        at = utc(at).replace(minute=0, second=0, microsecond=0)
        if at >= start:
            per_hour[at] += 1
    return by_status, by_region, per_hour


def _votes(votes: list, corrections: list, region: dict[int, str], verified: set[int]) -> dict[str, Any]:
    """Vote columns and totals per region: the machine's of every submission, the effective ones of verified ones."""
    effective = {(i, f): v for i, f, v in corrections}  # newest correction last, so it wins
    machine: dict[str, Counter] = defaultdict(Counter)
    checked: dict[str, Counter] = defaultdict(Counter)
    columns: set[str] = set()
    for i, f, value in votes:
        columns.add(f)
        machine[region[i]][f] += value or 0
        if i in verified:
            checked[region[i]][f] += effective.get((i, f), value) or 0
    return dict(
        vote_columns=sorted(columns, key=ballot_order),
        votes={r: {"machine": dict(machine[r]), "verified": dict(checked[r]),
                   "verified_count": sum(1 for i in verified if region[i] == r)} for r in sorted(machine)})


def dashboard(store: ResultStore, hours: int = 24) -> dict[str, Any]:
    """Counts by status and region, reads per hour over the last `hours` (each by its start, UTC), review reasons,
    vote totals by region (machine reads of every submission beside the effective values of verified ones), and how
    many TPS have sources that disagree (`conflicts`: in all, and with no reviewer's choice yet)."""
    with store.engine.connect() as connection:  # Core rows: no ORM bookkeeping over 10,000s of them
        subs = connection.execute(select(SubmissionRow.id, SubmissionRow.submission, SubmissionRow.status,
                                         ReviewRow.state, SubmissionRow.created_at, SubmissionRow.desa, RegionRow.name)
                                  .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)
                                  .outerjoin(RegionRow, RegionRow.code == func.substr(SubmissionRow.desa, 1, 4))).all()
        reasons = connection.scalars(select(FieldRow.reasons).where(FieldRow.status.in_(FLAGGED))).all()
        votes = connection.execute(select(FieldRow.submission_id, FieldRow.field_id, FieldRow.value)
                                   .where(FieldRow.field_id.in_(vote_fields()))).all()
        corrections = connection.execute(select(CorrectionRow.submission_id, CorrectionRow.field_id,
                                                CorrectionRow.new_value).order_by(CorrectionRow.id)).all()
        in_conflict, undecided = counts(connection)
    region = {i: region_of(name, desa, kabupaten) for i, name, _, _, _, desa, kabupaten in subs}
    verified = {i for i, _, _, state, *_ in subs if state == "verified"}
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours - 1)
    by_status, by_region, per_hour = _by_status(subs, region, start)
    reason_counts = Counter(str(Reason.model_validate(r).code) for rs in reasons for r in rs)
    return dict(
        total=len(subs), by_status=dict(by_status),
        by_region={r: dict(c) for r, c in sorted(by_region.items())},
        per_hour=[(at, per_hour[at]) for at in (start + timedelta(hours=h) for h in range(hours))],
        reasons=reason_counts.most_common(), conflicts={"tps": in_conflict, "undecided": undecided},
        **_votes(votes, corrections, region, verified))

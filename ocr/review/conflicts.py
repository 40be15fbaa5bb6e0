"""Which TPS have sources that disagree (issue 21), found in SQL: the queue's filter and badge, the dashboard's count,
the pages of /selisih and the check before a verification ask the database, not every source compared in Python.

A TPS's key (`tps_key`): `place:<desa>/<tps>/<election>`, else, for a submission without a place, `name:<its name>`;
an external number set carries its key (`external_sources.tps_key`). A source's values are a submission's effective
values (its newest correction of a field, else the machine's) or an external set's JSON values. Two sources of one
key that both carry a field with different values (a value against none counts) put the key in conflict: the same
test as `ocr.review.sources.conflicts`, which then details one TPS.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from ocr.db.tables import CorrectionRow, ExternalSourceRow, FieldRow, SourceChoiceRow, SubmissionRow, UserRow

PLACE, NAME = "place:", "name:"  # the two kinds of TPS key
SOURCE_CONFLICT = "source_conflict"  # the finding's code, on the review page and in its text


def tps_key(desa: str | None, tps: int | None, election: str | None, submission: str) -> str:
    """The TPS a submission (or an imported row) is of: `place:<desa>/<tps>/<election>`, else `name:<its name>`."""
    return f"{PLACE}{desa}/{tps}/{election}" if desa is not None else f"{NAME}{submission}"


def read_ref(submission_id: int) -> str:
    """How a choice names a submission as its TPS's result (`source_choices.chosen`)."""
    return f"submission:{submission_id}"


# `tps_key` of a submission row, in SQL: of one with a place, and of any.
_PLACE_KEY = literal(PLACE) + SubmissionRow.desa + "/" + cast(SubmissionRow.tps, String) + "/" + SubmissionRow.election
TPS_KEY: ColumnElement[str] = case((SubmissionRow.desa.is_not(None), _PLACE_KEY),
                                   else_=literal(NAME) + SubmissionRow.submission)


class _JsonFields(FunctionElement):
    """A JSON object's (key, value) rows, the value as text: json_each in SQLite, json_each_text in PostgreSQL."""

    inherit_cache = True


@compiles(_JsonFields)
def _json_each(element: _JsonFields, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@compiles(_JsonFields, "postgresql")
def _json_each_text(element: _JsonFields, compiler: Any, **kw: Any) -> str:
    return f"json_each_text({compiler.process(element.clauses, **kw)})"


def tps_where(key: str) -> list[ColumnElement[bool]] | None:
    """The conditions on submission rows of the TPS `key`; None for a place key that names no place (a key from a
    form may be anything)."""
    if key.startswith(PLACE):
        place = re.fullmatch(r"(\d{10})/(\d+)/(\w+)", key.removeprefix(PLACE))
        if place is None:
            return None
        desa, tps, election = place.groups()
        return [SubmissionRow.desa == desa, SubmissionRow.tps == int(tps), SubmissionRow.election == election]
    return [SubmissionRow.desa.is_(None), SubmissionRow.submission == key.removeprefix(NAME)]


def _several_sources() -> Select:
    """The keys of TPS with more than one source, counted per place or name on the index, then summed."""
    counts = union_all(
        select(_PLACE_KEY.label("tps_key"), func.count().label("n")).where(SubmissionRow.desa.is_not(None))
        .group_by(SubmissionRow.election, SubmissionRow.desa, SubmissionRow.tps),
        select((literal(NAME) + SubmissionRow.submission).label("tps_key"), func.count().label("n"))
        .where(SubmissionRow.desa.is_(None)).group_by(SubmissionRow.submission),
        select(ExternalSourceRow.tps_key, func.count().label("n")).group_by(ExternalSourceRow.tps_key)).subquery()
    return select(counts.c.tps_key).group_by(counts.c.tps_key).having(func.sum(counts.c.n) > 1)


def _source_values(only: str | None) -> CTE:
    """(tps_key, source, field_id, value) of every source of a TPS with several (`only`: of that TPS): a submission's
    id, an external set's id negated (so the two kinds never share a number)."""
    if only is None:
        several = _several_sources()
        reads_of, external_of = [TPS_KEY.in_(several)], ExternalSourceRow.tps_key.in_(several)
    else:
        reads_of, external_of = tps_where(only) or [false()], ExternalSourceRow.tps_key == only
    # The submissions first, then their fields by the index: not every field of the database scanned for its TPS.
    submissions = select(SubmissionRow.id, TPS_KEY.label("tps_key")).where(*reads_of).cte().prefix_with("MATERIALIZED")
    newest = (select(CorrectionRow.submission_id, CorrectionRow.field_id, func.max(CorrectionRow.id).label("id"))
              .group_by(CorrectionRow.submission_id, CorrectionRow.field_id).subquery())
    correction = aliased(CorrectionRow)
    reads = (select(submissions.c.tps_key, submissions.c.id.label("source"), FieldRow.field_id.label("field_id"),
                    case((correction.id.is_not(None), correction.new_value), else_=FieldRow.value).label("value"))
             .join(FieldRow, FieldRow.submission_id == submissions.c.id)
             .outerjoin(newest, and_(newest.c.submission_id == FieldRow.submission_id,
                                     newest.c.field_id == FieldRow.field_id))
             .outerjoin(correction, correction.id == newest.c.id))
    fields = _JsonFields(ExternalSourceRow.values).table_valued("key", "value")
    external = (select(ExternalSourceRow.tps_key, (-ExternalSourceRow.id).label("source"),
                       fields.c.key.label("field_id"), cast(fields.c.value, Integer).label("value"))
                .select_from(ExternalSourceRow).join(fields, true()).where(external_of))
    return union_all(reads, external).cte()


def _differing(only: str | None) -> Select:
    """(tps_key, field_id) of every field two sources of a TPS give different values (`only`: of that TPS)."""
    values = _source_values(only)
    given = func.count(values.c.value)
    # Grouped, not the values joined to themselves: PostgreSQL planned that join as a nested loop over 2,000 TPS with
    # two sources and took minutes. Each source gives a field once: two values differ, or one against none.
    return (select(values.c.tps_key, values.c.field_id).group_by(values.c.tps_key, values.c.field_id)
            .having(or_(func.count(values.c.value.distinct()) > 1, and_(given > 0, func.count() > given))))


def conflicted_keys(only: str | None = None) -> Select:
    """The keys (`tps_key`) of TPS in conflict, once each; `only`: that TPS's key, if it is."""
    differing = _differing(only).subquery()
    return select(differing.c.tps_key).distinct()


def decided(key: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether a reviewer has chosen a result for the TPS `key`."""
    return select(SourceChoiceRow.id).where(SourceChoiceRow.tps_key == key).exists()


def _conflicted_tps() -> CTE:
    """The TPS in conflict: (tps_key, decided); computed once a query (materialised: as a subquery joined on an
    expression SQLite computed it again for every row)."""
    keys = conflicted_keys().subquery()
    return select(keys.c.tps_key, decided(keys.c.tps_key).label("decided")).cte("conflicted").prefix_with("MATERIALIZED")


# One CTE for the whole module: a query that asks both (the queue's badge and its filter) computes the TPS once.
_CONFLICTED = _conflicted_tps()


def in_conflict() -> ColumnElement[bool]:
    """Whether a submission row's TPS is in conflict: a condition (or column) of a query over submissions; asked with
    IN, not joined on the key expression, which SQLite answered by scanning the conflicted TPS for every row."""
    return TPS_KEY.in_(select(_CONFLICTED.c.tps_key))


def undecided_conflict() -> ColumnElement[bool]:
    """Whether a submission row's TPS is in conflict with no reviewer's choice yet."""
    return TPS_KEY.in_(select(_CONFLICTED.c.tps_key).where(~_CONFLICTED.c.decided))


def counts(connection: Connection | Session, only: str | None = None) -> tuple[int, int]:
    """How many TPS are in conflict (`only`: that one, or none), and how many of them have no reviewer's choice yet."""
    keys = conflicted_keys(only).subquery()
    total, undecided = connection.execute(select(func.count(), func.count().filter(~decided(keys.c.tps_key)))
                                          .select_from(keys)).one()
    return total, undecided


def conflicted_page(connection: Connection | Session, limit: int, offset: int, only: str | None = None) -> list[str]:
    """The keys of one page of the TPS in conflict (`only`: that one, or none), sorted."""
    keys = conflicted_keys(only).subquery()
    return list(connection.scalars(select(keys.c.tps_key).order_by(keys.c.tps_key).limit(limit).offset(offset)))


def differing_fields(connection: Connection | Session, key: str) -> list[str]:
    """The fields the sources of the TPS `key` disagree on, sorted; none when they agree."""
    differing = _differing(key).subquery()
    return list(connection.scalars(select(differing.c.field_id).order_by(differing.c.field_id)))


def newest_choice(connection: Connection | Session, key: str) -> Row | None:
    """The choice that holds for the TPS `key`, the newest: (chosen, user_id, name) (its source's ref, its
    reviewer's id and name); None when no one chose."""
    return connection.execute(select(SourceChoiceRow.chosen, SourceChoiceRow.user_id, UserRow.name)
                              .join(UserRow, UserRow.id == SourceChoiceRow.user_id)
                              .where(SourceChoiceRow.tps_key == key)
                              .order_by(SourceChoiceRow.id.desc()).limit(1)).first()

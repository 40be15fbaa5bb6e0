"""More than one source per TPS (issue 21): the reads of its submissions and numbers imported from outside, compared
field by field; one of them is the TPS's chosen result, every one is kept.

A TPS is its place (desa code, TPS number, election), else, for a submission without one, its name
(`ocr.review.conflicts.tps_key`). Its sources: every stored submission of it (the plano photo, the salinan, a second
photo, a witness's), with its effective values (corrections applied), and every external number set
(`formc sources import`, `external.py`). The chosen result: a reviewer's choice (logged, four eyes), else the newest
verified submission, else the newest read; an external set is never chosen by itself.

Any field two sources both carry with different values is a `source_conflict` (`SourceConflict`). Which TPS have one
is asked of the database (`conflicts.py`), a page of them at a time: the discrepancy view (/selisih) lists them beside
the pages one sheet shows under two TPS (`ocr/run/same_sheet.py`); the review page shows a submission's TPS's; a read
of a TPS in conflict is verified only once a reviewer has chosen it (`Reviews.source_refusal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ocr.db.tables import ExternalSourceRow, PageRow, SourceChoiceRow, SubmissionRow
from ocr.review.accounts import User
from ocr.review.audit import record
from ocr.review.conflicts import SOURCE_CONFLICT, conflicted_page, counts, newest_choice, read_ref, tps_key, tps_where
from ocr.review.errors import FourEyes, ReviewError
from ocr.review.workflow import Reviews, SubmissionView
from ocr.run.same_sheet import HashedPage, same_sheets


@dataclass(frozen=True)
class Source:
    """One source of a TPS's numbers. `ref` names it in a choice: `submission:<id>` or `external:<id>`."""

    ref: str
    label: str  # for people: the submission's name (#id when two share it), the import's source name
    values: dict[str, int | None]
    submission_id: int | None = None  # None: an external number set
    # The submission's read pages, for its photos side by side: (the photo's position, the form's page number); the
    # drawn preview of a photo is named by its position (`/submissions/<id>/page-<position>.jpg`).
    pages: tuple[tuple[int, int], ...] = ()
    verified: bool = False


@dataclass(frozen=True)
class SourceConflict:
    """Two sources of a TPS that give a field different values."""

    field_id: str
    first: Source
    second: Source

    def __str__(self) -> str:
        return (f"{SOURCE_CONFLICT}: {self.field_id} {self.first.label} {_shown(self.first.values[self.field_id])} vs "
                f"{self.second.label} {_shown(self.second.values[self.field_id])}")


def _shown(value: int | None) -> str:
    return "-" if value is None else str(value)


def conflicts(sources: list[Source]) -> list[SourceConflict]:
    """Every field that two sources both carry with different values, once per pair of sources, by field."""
    found = [SourceConflict(f, a, b) for a, b in combinations(sources, 2)
             for f in a.values if f in b.values and a.values[f] != b.values[f]]
    return sorted(found, key=lambda c: c.field_id)


@dataclass(frozen=True)
class TpsSources:
    key: str
    sources: list[Source]  # submissions newest first, then the external sets by name
    chosen: Source | None  # None: no submission and no choice yet
    chosen_by: str | None  # the reviewer who chose it; None when it is the default

    @property
    def conflicts(self) -> list[SourceConflict]:
        return conflicts(self.sources)

    @property
    def differing(self) -> list[str]:
        """The fields some sources disagree on."""
        return sorted({c.field_id for c in self.conflicts})


@dataclass(frozen=True)
class SheetPage:
    submission_id: int
    submission: str
    sha256: str  # its photo (/submissions/<id>/photos/<sha256>)


@dataclass(frozen=True)
class SheetPair:
    """One sheet under two TPS: pages of two submissions of different TPS whose handwriting hashes alike."""

    template: str
    page: int
    bits: int
    first: SheetPage
    second: SheetPage


class Sources:
    """The sources of every TPS in the results database behind `reviews`."""

    def __init__(self, reviews: Reviews) -> None:
        self.reviews = reviews
        self.engine = reviews.engine

    def of(self, key: str) -> TpsSources:
        """The TPS's sources, its chosen result and who chose it."""
        where = tps_where(key)
        if where is None:  # a key from a form may be anything: one that is no place is a TPS without sources
            return TpsSources(key, [], None, None)
        with Session(self.engine) as session:
            ids = session.scalars(select(SubmissionRow.id).where(*where).order_by(SubmissionRow.id.desc())).all()
            external = session.scalars(select(ExternalSourceRow).where(ExternalSourceRow.tps_key == key)
                                       .order_by(ExternalSourceRow.source)).all()
            choice = newest_choice(session, key)
        views = [v for v in map(self.reviews.view, ids) if v is not None]
        names = [v.result.submission for v in views]
        sources = [_read(v, names.count(v.result.submission) > 1) for v in views] + [
            Source(f"external:{row.id}", row.source, row.values) for row in external]
        by_ref = {s.ref: s for s in sources}
        if choice is not None and choice.chosen in by_ref:
            return TpsSources(key, sources, by_ref[choice.chosen], choice.name)
        reads = [s for s in sources if s.submission_id is not None]
        default = next((s for s in reads if s.verified), reads[0] if reads else None)
        return TpsSources(key, sources, default, None)

    def in_conflict(self, limit: int, offset: int = 0, only: str | None = None) -> list[TpsSources]:
        """One page (`limit` from `offset`) of the TPS whose sources disagree, in the order of their keys; `only`:
        that TPS, if its do."""
        with Session(self.engine) as session:
            keys = conflicted_page(session, limit, offset, only)
        return [self.of(key) for key in keys]

    def conflict_counts(self, only: str | None = None) -> tuple[int, int]:
        """How many TPS have sources that disagree (`only`: that one, or none), and how many of them no reviewer has
        chosen a result for."""
        with Session(self.engine) as session:
            return counts(session, only)

    def same_sheets(self) -> list[SheetPair]:
        """Pages of submissions of different TPS that show one sheet, nearest first."""
        query = (select(SubmissionRow.id, SubmissionRow.submission, SubmissionRow.desa, SubmissionRow.tps,
                        SubmissionRow.election, SubmissionRow.template, PageRow.page, PageRow.sha256, PageRow.photo_hash)
                 .join(PageRow, PageRow.submission_id == SubmissionRow.id)
                 .where(PageRow.photo_hash.is_not(None), PageRow.page.is_not(None), SubmissionRow.template.is_not(None)))
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        pages = {(str(r.id), r.sha256): r for r in rows}
        # The submission's id stands for its name and the photo's sha256 for its source: both are what links need.
        hashed = [HashedPage(str(r.id), r.sha256, r.template, r.page, r.photo_hash) for r in rows]
        found = []
        for pair in same_sheets(hashed):
            a, b = pages[(pair.first.submission, pair.first.source)], pages[(pair.second.submission, pair.second.source)]
            if tps_key(a.desa, a.tps, a.election, a.submission) != tps_key(b.desa, b.tps, b.election, b.submission):
                found.append(SheetPair(pair.first.template, pair.first.page, pair.bits,
                                       SheetPage(a.id, a.submission, a.sha256), SheetPage(b.id, b.submission, b.sha256)))
        return found

    def choose(self, key: str, ref: str, user: User, reason: str) -> Source:
        """Makes the source `ref` the TPS's result: logged with the reason; refused to whoever uploaded or corrected
        the submission chosen (four eyes)."""
        reason = reason.strip()
        if not reason:
            raise ReviewError("say why this source is chosen (the reason is kept with the choice)")
        tps = self.of(key)
        source = next((s for s in tps.sources if s.ref == ref), None)
        if source is None:
            raise ReviewError("no such source of this TPS")
        if source.submission_id is not None:
            view = self.reviews.view(source.submission_id)
            if view.four_eyes(user) is not None:
                self.reviews.log(user, "choose_refused", source.submission_id, reason="four_eyes", tps=key)
                raise FourEyes("you uploaded or corrected %(submission)s: another reviewer must choose it (four eyes)",
                               submission=source.label)
        with Session(self.engine) as session, session.begin():
            session.add(SourceChoiceRow(tps_key=key, chosen=ref, reason=reason, user_id=user.id))
            record(session, user, "choose_source", source.submission_id, {
                "tps": key, "chosen": source.label, "was": tps.chosen.label if tps.chosen else None, "reason": reason})
        return source

    def import_numbers(self, source: str, template: str, rows: dict[str, dict[str, int | None]]) -> None:
        """Stores `rows` (TPS key -> field values) as the external source `source`, replacing what an earlier import
        of that source held for those TPS; logged."""
        with Session(self.engine) as session, session.begin():
            put_numbers(session, source, template, rows)
            record(session, None, "import_source", None, {"source": source, "template": template, "tps": len(rows)})


def put_numbers(session: Session, source: str, template: str, rows: dict[str, dict[str, int | None]]) -> None:
    """Stores `rows` (TPS key -> field values) as the external source `source` in `session`'s transaction, replacing
    what it held for those TPS (an import of numbers; an office's values the centre's disagree with, `sync/merge.py`)."""
    session.execute(delete(ExternalSourceRow).where(ExternalSourceRow.source == source,
                                                    ExternalSourceRow.tps_key.in_(rows)))
    session.add_all(ExternalSourceRow(source=source, tps_key=key, template=template, values=values)
                    for key, values in rows.items())


def _read(view: SubmissionView, named_twice: bool) -> Source:
    label = f"{view.result.submission}#{view.id}" if named_twice else view.result.submission
    pages = tuple((i, p.page) for i, p in enumerate(view.result.pages) if p.page is not None and p.status == "read")
    return Source(read_ref(view.id), label, view.values, view.id, pages,
                  view.state == "verified")

"""The review of stored results: the queue, a submission as reviewers see it, corrections, verification.

The machine's result is never changed here (a new save of the same photos replaces it whole): a
reviewer's value goes into `corrections`, and a field's effective value is its newest correction,
else the machine's. A verified submission is locked until someone reopens it, an explicit and
logged action; no one who uploaded these photos or corrected the submission may verify it (four eyes).
Every change is written to `audit_log` in the same transaction as the change itself (`audit.py`).

`Reviews` is the one object the web app and the CLI hold: these actions on top of the accounts
(`accounts.py`) and the audit log; exports and dashboard figures are read from it (`exports.py`,
`dashboard.py`).

Region (dashboard, exports): the kabupaten/kota of the submission's place, by its registry name; a submission without
a place keeps the old guess, its name's first path segment (`kab-x/tps-0001` -> `kab-x`; without `/`: `-`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, aliased

from ocr.db.tables import AuditRow, CorrectionRow, FieldRow, PageRow, RegionRow, ReviewRow, SubmissionRow, UserRow
from ocr.db.uploads import record_upload, submission_id_of
from ocr.reader.reasons import FindingCode
from ocr.record import SubmissionResult
from ocr.review.accounts import Accounts, User
from ocr.review.audit import record, utc
from ocr.review.conflicts import differing_fields, in_conflict, newest_choice, read_ref, tps_key, undecided_conflict
from ocr.review.errors import FourEyes, Locked, ReviewError
from ocr.review.search import SubmissionFilter
from ocr.templates.catalog import get_template

FLAGGED = ("review", "unreadable")  # field statuses a reviewer must look at
QUEUED = ("review", "ok")  # machine statuses that can be verified; rejected and error need new photos
MAX_VALUE = 99_999  # more digits than any box group on the forms


@dataclass(frozen=True)
class Correction:
    field_id: str
    old_value: int | None
    new_value: int | None
    reason: str
    user: str
    at: datetime


@dataclass(frozen=True)
class QueueItem:
    """A submission as the queue and the list of submissions show it."""

    id: int
    submission: str
    status: str  # the machine's
    flagged: int
    lowest_confidence: float
    created_at: datetime
    state: str = "open"  # open | verified
    verified_by: str | None = None
    conflict: bool = False  # its TPS's sources disagree (`conflicts.py`)

    @property
    def shown_status(self) -> str:
        """`verified` once verified, else the machine's status (the list's status filter: `search.py`)."""
        return "verified" if self.state == "verified" else self.status


@dataclass
class SubmissionView:
    """A stored result with the people's side: corrections, uploader, verification."""

    id: int
    result: SubmissionResult
    created_at: datetime
    state: str  # open | verified
    uploaded_by: User | None
    verified_by: str | None
    verified_at: datetime | None
    corrections: list[Correction] = field(default_factory=list)
    uploaders: frozenset[str] = frozenset()  # everyone who uploaded these photos, first (uploaded_by) or again
    kabupaten: str | None = None  # the registry's name of its place's kabupaten/kota

    def four_eyes(self, user: User) -> FourEyes | None:
        """Why `user` may not verify this submission under four eyes (they uploaded or corrected it), or None."""
        if user.name in self.uploaders:
            return FourEyes("you uploaded this submission: another reviewer must verify it (four eyes)")
        if any(c.user == user.name for c in self.corrections):
            return FourEyes("you corrected this submission: another reviewer must verify it (four eyes)")
        return None

    @property
    def corrected(self) -> dict[str, Correction]:
        """The newest correction of each corrected field."""
        return {c.field_id: c for c in self.corrections}

    @property
    def values(self) -> dict[str, int | None]:
        """Effective values: the newest correction, else the machine's value."""
        corrected = self.corrected
        return {f: corrected[f].new_value if f in corrected else r.value for f, r in self.result.fields.items()}

    @property
    def missing_pages(self) -> list[str]:
        """The numbers of the form's pages no photo shows (`missing_page` findings; a detail starts with its number)."""
        return [r.detail.split(" ", 1)[0] for r in self.result.reasons if r.code == FindingCode.MISSING_PAGE]

    @property
    def tps_key(self) -> str:
        """The TPS it is a read of (`conflicts.tps_key`): its place, else its name."""
        place, name = self.result.place, self.result.submission
        return tps_key(place.desa, place.tps, place.election, name) if place else tps_key(None, None, None, name)

    @property
    def region(self) -> str:
        place = self.result.place
        return region_of(self.result.submission, place.desa if place else None, self.kabupaten)

    def failed_rules(self) -> list[tuple[str, bool]]:
        """(rule, hard) of every template rule the effective values break; a rule reading an empty field counts."""
        if self.result.template is None:
            return []
        template = get_template(self.result.template)
        values = self.values
        failed = []
        for rule in template.rules:
            fields = rule.parsed.field_ids(template.fields)
            if any(values.get(f) is None for f in fields) or not rule.holds({f: values[f] for f in fields}):
                failed.append((rule.expr, rule.hard))
        return failed


def region_of(submission: str, desa: str | None = None, kabupaten: str | None = None) -> str:
    """A submission's region (module docstring): `kabupaten` (its name), else the kabupaten/kota code of `desa`; the
    name's first segment for a submission without a place."""
    if desa is not None:
        return kabupaten or desa[:4]
    return submission.split("/", 1)[0] if "/" in submission else "-"


def parse_value(text: str) -> int | None:
    """A typed field value: blank is no value; otherwise a whole number of votes, or ValueError."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_VALUE:
        raise ValueError(f"{text!r} is not a number of votes (0 to {MAX_VALUE})")
    return int(text)


def _verify_refusal(view: SubmissionView, user: User) -> ReviewError | None:
    """Why `user` may not verify the submission now, or None."""
    if view.state == "verified":
        return Locked("%(submission)s is verified already", submission=view.result.submission)
    if (refusal := view.four_eyes(user)) is not None:
        return refusal
    if view.result.status not in QUEUED:
        return ReviewError("a %(status)s submission cannot be verified: its photos must be taken again",
                           status=view.result.status)
    missing = [f for f, v in view.values.items() if v is None]
    if missing:
        return ReviewError("cannot verify: no value for %(fields)s", fields=", ".join(missing))
    hard = [rule for rule, is_hard in view.failed_rules() if is_hard]
    if hard:
        return ReviewError("cannot verify: rule fails: %(rules)s", rules="; ".join(hard))
    return None


def _source_refusal(session: Session, view: SubmissionView, user: User) -> ReviewError | None:
    """Why `user` may not verify a read of a TPS whose sources disagree: only the read a reviewer chose is, by another
    reviewer (four eyes); None when they agree."""
    fields = differing_fields(session, view.tps_key)
    if not fields:
        return None
    choice = newest_choice(session, view.tps_key)
    if choice is None:
        return ReviewError("the sources of this TPS disagree on %(fields)s: choose its result in Selisih, or correct the "
                           "read that is wrong", fields=", ".join(fields))
    if choice.chosen != read_ref(view.id):
        return ReviewError("the sources of this TPS disagree on %(fields)s and %(user)s chose another as its result: "
                           "correct this read to agree, or choose it in Selisih", fields=", ".join(fields),
                           user=choice.name)
    if choice.user_id == user.id:
        return FourEyes("you chose this read as its TPS's result: another reviewer must verify it (four eyes)")
    return None


# Queued (a status a person can verify) and not verified: the review queue's rows.
_QUEUED_OPEN = (SubmissionRow.status.in_(QUEUED), or_(ReviewRow.state.is_(None), ReviewRow.state == "open"))
# Each submission's flagged fields: how many, and the least sure of them (the queue's risk).
_FLAGGED = (select(FieldRow.submission_id, func.count().label("flagged"), func.min(FieldRow.confidence).label("lowest"))
            .where(FieldRow.status.in_(FLAGGED)).group_by(FieldRow.submission_id).subquery())
_N_FLAGGED = func.coalesce(_FLAGGED.c.flagged, 0)
_LOWEST = func.coalesce(_FLAGGED.c.lowest, 1.0)


class Reviews(Accounts):
    """The review side of the results database behind `store`."""

    # --- submissions ----------------------------------------------------------------------------------------------

    def id_of(self, submission: str | None, photos_key: str) -> int | None:
        return submission_id_of(self.store, submission, photos_key)

    def record_upload(self, submission_id: int, user: User, photos: list[str], upload_id: str | None = None) -> None:
        """Who uploaded the submission (the first uploader stays when the same photos come again); see
        `ocr.db.uploads.record_upload`."""
        record_upload(self.store, submission_id, user.id, photos, upload_id)

    def latest(self, submission: str) -> SubmissionView | None:
        """The newest stored read of the TPS named `submission`, or None."""
        with Session(self.engine) as session:
            submission_id = session.scalar(select(SubmissionRow.id).where(SubmissionRow.submission == submission)
                                           .order_by(SubmissionRow.id.desc()).limit(1))
        return self.view(submission_id) if submission_id is not None else None

    def photos_elsewhere(self, shas: set[str], submission: str) -> tuple[int, str] | None:
        """(id, name) of the first stored submission not named `submission` with any of these photos, or None."""
        with Session(self.engine) as session:
            found = session.execute(
                select(SubmissionRow.id, SubmissionRow.submission).join(PageRow, PageRow.submission_id == SubmissionRow.id)
                .where(PageRow.sha256.in_(shas), SubmissionRow.submission != submission)
                .order_by(SubmissionRow.id).limit(1)).first()
        return tuple(found) if found is not None else None

    def view(self, submission_id: int) -> SubmissionView | None:
        result = self.store.get_by_id(submission_id)
        if result is None:
            return None
        with Session(self.engine) as session:
            created_at = session.scalar(select(SubmissionRow.created_at).where(SubmissionRow.id == submission_id))
            review = session.get(ReviewRow, submission_id)
            uploader = session.get(UserRow, review.uploaded_by) if review and review.uploaded_by else None
            verifier = session.get(UserRow, review.verified_by) if review and review.verified_by else None
            corrections = [Correction(c.field_id, c.old_value, c.new_value, c.reason, name, utc(c.created_at))
                           for c, name in session.execute(
                               select(CorrectionRow, UserRow.name).join(UserRow, UserRow.id == CorrectionRow.user_id)
                               .where(CorrectionRow.submission_id == submission_id).order_by(CorrectionRow.id))]
            uploaders = frozenset(session.scalars(
                select(UserRow.name).join(AuditRow, AuditRow.user_id == UserRow.id)
                .where(AuditRow.action == "upload", AuditRow.submission_id == submission_id))) | (
                {uploader.name} if uploader else set())
            kabupaten = session.scalar(select(RegionRow.name).where(RegionRow.code == result.place.desa[:4])) \
                if result.place else None
        return SubmissionView(
            id=submission_id, result=result, created_at=utc(created_at), state=review.state if review else "open",
            uploaded_by=User(uploader.id, uploader.name, uploader.role) if uploader else None,
            verified_by=verifier.name if verifier else None,
            verified_at=utc(review.verified_at) if review else None, corrections=corrections, uploaders=uploaders,
            kabupaten=kabupaten)

    def has_uploaded(self, user: User, submission_id: int) -> bool:
        """Whether `user` uploaded these photos (first or again): what lets an operator see a submission."""
        with Session(self.engine) as session:
            return session.scalar(select(AuditRow.id).where(AuditRow.action == "upload", AuditRow.user_id == user.id,
                                                            AuditRow.submission_id == submission_id).limit(1)) is not None

    def uploaded_by(self, user: User, limit: int = 20) -> list[tuple[int, str, str, str]]:
        """(id, submission, machine status, review state) of the user's newest uploads."""
        with Session(self.engine) as session:
            return [tuple(r) for r in session.execute(
                select(SubmissionRow.id, SubmissionRow.submission, SubmissionRow.status, ReviewRow.state)
                .join(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)
                .where(ReviewRow.uploaded_by == user.id).order_by(SubmissionRow.id.desc()).limit(limit))]

    def queue(self, limit: int = 100, offset: int = 0, found: SubmissionFilter = SubmissionFilter()) -> list[QueueItem]:
        """Open submissions that can be verified, narrowed to `found`: `review` and those of a TPS whose sources
        disagree with no reviewer's choice yet first, by risk (more flagged fields, then the lowest confidence of a
        flagged field), then `ok`; oldest first on ties. `offset`: how many to skip."""
        # A submission of a TPS whose sources disagree, which no reviewer has decided, goes with those to review.
        return self._listed(limit, offset, [*_QUEUED_OPEN, *found.where()],
                            case((or_(SubmissionRow.status == "review", undecided_conflict()), 0), else_=1), _N_FLAGGED.desc(),
                            _LOWEST, SubmissionRow.id)

    def queue_size(self, found: SubmissionFilter = SubmissionFilter()) -> int:
        """How many submissions the queue (narrowed to `found`) holds in all."""
        return self._count([*_QUEUED_OPEN, *found.where()])

    def submissions(self, limit: int = 100, offset: int = 0,
                    found: SubmissionFilter = SubmissionFilter()) -> list[QueueItem]:
        """Every stored submission narrowed to `found`, verified or not, whatever its status; the newest first."""
        return self._listed(limit, offset, found.where(), SubmissionRow.id.desc())

    def submissions_size(self, found: SubmissionFilter = SubmissionFilter()) -> int:
        """How many stored submissions `found` matches."""
        return self._count(found.where())

    def _listed(self, limit: int, offset: int, where: list[Any], *order: Any) -> list[QueueItem]:
        """Submissions with their review rows and flagged fields where `where` holds, in `order`, one page of them."""
        verifier = aliased(UserRow)
        query = (select(SubmissionRow.id, SubmissionRow.submission, SubmissionRow.status, _N_FLAGGED, _LOWEST,
                        SubmissionRow.created_at, ReviewRow.state, verifier.name, in_conflict())
                 .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)
                 .outerjoin(_FLAGGED, _FLAGGED.c.submission_id == SubmissionRow.id)
                 .outerjoin(verifier, verifier.id == ReviewRow.verified_by)
                 .where(*where).order_by(*order).limit(limit).offset(offset))
        with Session(self.engine) as session:
            return [QueueItem(i, name, status, flagged_, float(low), utc(at), state or "open", verified_by, bool(conflict))
                    for i, name, status, flagged_, low, at, state, verified_by, conflict in session.execute(query)]

    def _count(self, where: list[Any]) -> int:
        query = (select(func.count()).select_from(SubmissionRow)
                 .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id).where(*where))
        with Session(self.engine) as session:
            return session.scalar(query)

    # --- corrections and verification -----------------------------------------------------------------------------

    def _lock(self, session: Session, submission_id: int) -> ReviewRow | None:
        """The submission's review row, with the submission locked against a concurrent change (PostgreSQL)."""
        if session.scalar(select(SubmissionRow.id).where(SubmissionRow.id == submission_id).with_for_update()) is None:
            raise ReviewError("no submission %(id)s", id=submission_id)
        return session.get(ReviewRow, submission_id)

    def correct(self, submission_id: int, user: User, values: dict[str, int | None], reason: str) -> list[str]:
        """Records the reviewer's values that differ from the effective ones; the fields changed."""
        reason = reason.strip()
        if not reason:
            raise ReviewError("say why the values change (the reason is kept with each correction)")
        with Session(self.engine) as session, session.begin():
            review = self._lock(session, submission_id)
            view = self.view(submission_id)  # read under the lock: the old values are the ones being replaced
            unknown = sorted(set(values) - set(view.result.fields))
            if unknown:
                raise ReviewError("no such field: %(fields)s", fields=", ".join(unknown))
            if review is not None and review.state == "verified":
                raise Locked("%(submission)s is verified and locked: reopen it to change a value",
                             submission=view.result.submission)
            current = view.values
            changed = [f for f, v in values.items() if v != current[f]]
            for f in changed:
                session.add(CorrectionRow(submission_id=submission_id, field_id=f, old_value=current[f],
                                          new_value=values[f], reason=reason, user_id=user.id))
                record(session, user, "correct", submission_id, {"submission": view.result.submission, "field": f,
                                                                    "old": current[f], "new": values[f], "reason": reason})
        return changed

    def verify(self, submission_id: int, user: User) -> None:
        """Locks the submission as verified by `user`: not its uploader, every value present, no hard rule broken; of
        a TPS whose sources disagree, only the read another reviewer chose as its result (`_source_refusal`)."""
        with Session(self.engine) as session, session.begin():
            review = self._lock(session, submission_id)
            view = self.view(submission_id)
            refusal = _verify_refusal(view, user) or _source_refusal(session, view, user)
            if refusal is None:
                if review is None:
                    review = ReviewRow(submission_id=submission_id, state="open")
                    session.add(review)
                review.state, review.verified_by, review.verified_at = "verified", user.id, datetime.now(timezone.utc)
                record(session, user, "verify", submission_id, {"submission": view.result.submission,
                                                                   "values": view.values})
            elif isinstance(refusal, FourEyes):  # an attempt worth keeping in the log
                record(session, user, "verify_refused", submission_id, {"reason": "four_eyes"})
        if refusal is not None:
            raise refusal

    def source_refusal(self, view: SubmissionView, user: User) -> ReviewError | None:
        """Why `user` may not verify `view` for its TPS's sources (they disagree and it is not the chosen read, or
        `user` chose it), or None; `verify` asks the same."""
        with Session(self.engine) as session:
            return _source_refusal(session, view, user)

    def reopen(self, submission_id: int, user: User, reason: str) -> None:
        """Unlocks a verified submission for corrections; the reason is logged."""
        reason = reason.strip()
        if not reason:
            raise ReviewError("say why the submission is reopened")
        with Session(self.engine) as session, session.begin():
            review = self._lock(session, submission_id)
            if review is None or review.state != "verified":
                raise ReviewError("only a verified submission can be reopened")
            previous = review.verified_by
            review.state, review.verified_by, review.verified_at = "open", None, None
            record(session, user, "reopen", submission_id, {"reason": reason, "was_verified_by": previous})

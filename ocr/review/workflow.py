"""People's work on stored results: accounts, the review queue, corrections, verification, exports, dashboard figures.

The machine's result is never changed here (a new save of the same photos replaces it whole): a
reviewer's value goes into `corrections`, and a field's effective value is its newest correction,
else the machine's. A verified submission is locked until someone reopens it, an explicit and
logged action; the uploader of a submission cannot verify it (four eyes). Every change is written
to `audit_log` in the same transaction as the change itself.

Region (dashboard, exports): results carry no region yet, so it is the submission name's first
path segment (`kab-x/tps-0001` -> `kab-x`; a name without `/` has region `-`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from ocr.templates.catalog import get_template, load_templates
from ocr.record import SubmissionResult
from ocr.db.store import AuditRow, CorrectionRow, FieldRow, ResultStore, ReviewRow, SubmissionRow, UserRow

ROLES = ("operator", "reviewer", "admin")
FLAGGED = ("review", "unreadable")  # field statuses a reviewer must look at
QUEUED = ("review", "ok")  # machine statuses that can be verified; rejected and error need new photos
VOTE_FIELD = re.compile(r"^suara_(paslon_\d+|kolom_kosong)$")  # the per-candidate totals the dashboard adds up
MAX_VALUE = 99_999  # more digits than any box group on the forms


class ReviewError(Exception):
    """An action refused for a reason a person can act on (the message says which)."""


class Locked(ReviewError):
    """The submission is verified: reopen it first."""


class FourEyes(ReviewError):
    """The uploader of a submission tried to verify it."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str


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
    id: int
    submission: str
    status: str
    flagged: int
    lowest_confidence: float
    created_at: datetime


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
    def region(self) -> str:
        return region_of(self.result.submission)

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


@cache
def _vote_fields() -> tuple[str, ...]:
    """The per-candidate total fields of every shipped template."""
    return tuple(sorted({f for t in load_templates().values() for f in t.fields if VOTE_FIELD.match(f)}))


def region_of(submission: str) -> str:
    return submission.split("/", 1)[0] if "/" in submission else "-"


def parse_value(text: str) -> int | None:
    """A typed field value: blank is no value; otherwise a whole number of votes, or ValueError."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_VALUE:
        raise ValueError(f"{text!r} is not a number of votes (0 to {MAX_VALUE})")
    return int(text)


def box_labels(value: int | None, read_labels: list[str]) -> list[str]:
    """Classifier labels of a field's boxes for a corrected value: its digits right-aligned; a leading box is
    what the reader saw there when that was blank, X or -, else `?` (unknown: leave it out of training)."""
    digits = "" if value is None else str(value)
    if value is None or len(digits) > len(read_labels):
        return ["?"] * len(read_labels)
    lead = len(read_labels) - len(digits)
    return [label if not label.isdigit() else "?" for label in read_labels[:lead]] + list(digits)


def _utc(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes of CURRENT_TIMESTAMP, which is UTC.
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def _verify_refusal(view: SubmissionView, user: User) -> ReviewError | None:
    """Why `user` may not verify the submission now, or None."""
    if view.state == "verified":
        return Locked(f"{view.result.submission} is verified already")
    if view.uploaded_by is not None and view.uploaded_by.id == user.id:
        return FourEyes("you uploaded this submission: another reviewer must verify it (four eyes)")
    if view.result.status not in QUEUED:
        return ReviewError(f"a {view.result.status} submission cannot be verified: its photos must be taken again")
    missing = [f for f, v in view.values.items() if v is None]
    hard = [rule for rule, is_hard in view.failed_rules() if is_hard]
    if missing or hard:
        return ReviewError("cannot verify: " + "; ".join(
            ([f"no value for {', '.join(missing)}"] if missing else []) + [f"rule fails: {r}" for r in hard]))
    return None


class Reviews:
    """The review side of the results database behind `store`."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self.engine = store.engine

    # --- accounts -------------------------------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password_hash: str, by: User | None = None) -> User:
        if role not in ROLES:
            raise ReviewError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,100}", name):
            raise ReviewError("a user name is 1-100 letters, digits, '.', '_', '@' or '-'")
        with Session(self.engine) as session, session.begin():
            if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise ReviewError(f"user {name!r} exists already")
            row = UserRow(name=name, role=role, password_hash=password_hash, active=True)
            session.add(row)
            session.flush()
            self._log(session, by, "user_add", None, {"name": name, "role": role})
            return User(row.id, name, role)

    def credentials(self, name: str) -> tuple[User, str] | None:
        """An active user and their password hash, by name."""
        with Session(self.engine) as session:
            row = session.scalar(select(UserRow).where(UserRow.name == name, UserRow.active.is_(True)))
            return (User(row.id, row.name, row.role), row.password_hash) if row else None

    def set_password_hash(self, user: User, password_hash: str) -> None:
        """A rehash on log-in when the hashing parameters changed."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(UserRow).where(UserRow.id == user.id).values(password_hash=password_hash))

    def user(self, user_id: int) -> User | None:
        with Session(self.engine) as session:
            row = session.get(UserRow, user_id)
            return User(row.id, row.name, row.role) if row is not None and row.active else None

    # --- audit log ------------------------------------------------------------------------------------------------

    @staticmethod
    def _log(session: Session, user: User | None, action: str, submission_id: int | None, detail: dict[str, Any]) -> None:
        session.add(AuditRow(user_id=user.id if user else None, action=action, submission_id=submission_id, detail=detail))

    def log(self, user: User | None, action: str, submission_id: int | None = None, **detail: Any) -> None:
        """Records an action that changes nothing else (log-in, export, refused attempt)."""
        with Session(self.engine) as session, session.begin():
            self._log(session, user, action, submission_id, detail)

    def audit(self, limit: int = 200, submission_id: int | None = None) -> list[dict[str, Any]]:
        """The newest entries first: at, user, action, submission_id, detail."""
        query = (select(AuditRow.at, UserRow.name, AuditRow.action, AuditRow.submission_id, AuditRow.detail)
                 .outerjoin(UserRow, UserRow.id == AuditRow.user_id).order_by(AuditRow.id.desc()).limit(limit))
        if submission_id is not None:
            query = query.where(AuditRow.submission_id == submission_id)
        with Session(self.engine) as session:
            return [dict(at=_utc(at), user=name, action=action, submission_id=sid, detail=detail)
                    for at, name, action, sid, detail in session.execute(query)]

    # --- submissions ----------------------------------------------------------------------------------------------

    def id_of(self, photos_key: str) -> int | None:
        with Session(self.engine) as session:
            return session.scalar(select(SubmissionRow.id).where(SubmissionRow.photos_key == photos_key))

    def record_upload(self, submission_id: int, user: User, photos: list[str], upload_id: str | None = None) -> None:
        """Who uploaded the submission (the first uploader stays when the same photos come again). An `upload_id`
        already recorded for this submission is not logged again (a cluster task redelivered after a crash)."""
        with Session(self.engine) as session, session.begin():
            if session.get(ReviewRow, submission_id) is None:
                session.add(ReviewRow(submission_id=submission_id, uploaded_by=user.id, state="open"))
            if upload_id is not None and upload_id in session.scalars(
                    select(AuditRow.detail["upload"].as_string())
                    .where(AuditRow.action == "upload", AuditRow.submission_id == submission_id)):
                return
            detail = {"photos": photos} | ({"upload": upload_id} if upload_id else {})
            self._log(session, user, "upload", submission_id, detail)

    def view(self, submission_id: int) -> SubmissionView | None:
        result = self.store.get_by_id(submission_id)
        if result is None:
            return None
        with Session(self.engine) as session:
            created_at = session.scalar(select(SubmissionRow.created_at).where(SubmissionRow.id == submission_id))
            review = session.get(ReviewRow, submission_id)
            uploader = session.get(UserRow, review.uploaded_by) if review and review.uploaded_by else None
            verifier = session.get(UserRow, review.verified_by) if review and review.verified_by else None
            corrections = [Correction(c.field_id, c.old_value, c.new_value, c.reason, name, _utc(c.created_at))
                           for c, name in session.execute(
                               select(CorrectionRow, UserRow.name).join(UserRow, UserRow.id == CorrectionRow.user_id)
                               .where(CorrectionRow.submission_id == submission_id).order_by(CorrectionRow.id))]
        return SubmissionView(
            id=submission_id, result=result, created_at=_utc(created_at), state=review.state if review else "open",
            uploaded_by=User(uploader.id, uploader.name, uploader.role) if uploader else None,
            verified_by=verifier.name if verifier else None,
            verified_at=_utc(review.verified_at) if review else None, corrections=corrections)

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

    def queue(self, limit: int = 100) -> list[QueueItem]:
        """Open submissions that can be verified: `review` first, by risk (more flagged fields, then the lowest
        confidence of a flagged field), then `ok`; oldest first on ties."""
        flagged = (select(FieldRow.submission_id, func.count().label("flagged"),
                          func.min(FieldRow.confidence).label("lowest"))
                   .where(FieldRow.status.in_(FLAGGED)).group_by(FieldRow.submission_id).subquery())
        n_flagged = func.coalesce(flagged.c.flagged, 0)
        lowest = func.coalesce(flagged.c.lowest, 1.0)
        query = (select(SubmissionRow.id, SubmissionRow.submission, SubmissionRow.status, n_flagged, lowest,
                        SubmissionRow.created_at)
                 .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)
                 .outerjoin(flagged, flagged.c.submission_id == SubmissionRow.id)
                 .where(SubmissionRow.status.in_(QUEUED), or_(ReviewRow.state.is_(None), ReviewRow.state == "open"))
                 .order_by(case((SubmissionRow.status == "review", 0), else_=1), n_flagged.desc(), lowest,
                           SubmissionRow.id)
                 .limit(limit))
        with Session(self.engine) as session:
            return [QueueItem(i, name, status, flagged_, float(low), _utc(at))
                    for i, name, status, flagged_, low, at in session.execute(query)]

    def _lock(self, session: Session, submission_id: int) -> ReviewRow | None:
        """The submission's review row, with the submission locked against a concurrent change (PostgreSQL)."""
        if session.scalar(select(SubmissionRow.id).where(SubmissionRow.id == submission_id).with_for_update()) is None:
            raise ReviewError(f"no submission {submission_id}")
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
                raise ReviewError(f"no such field: {', '.join(unknown)}")
            if review is not None and review.state == "verified":
                raise Locked(f"{view.result.submission} is verified and locked: reopen it to change a value")
            current = view.values
            changed = [f for f, v in values.items() if v != current[f]]
            for f in changed:
                session.add(CorrectionRow(submission_id=submission_id, field_id=f, old_value=current[f],
                                          new_value=values[f], reason=reason, user_id=user.id))
                self._log(session, user, "correct", submission_id, {"submission": view.result.submission, "field": f,
                                                                    "old": current[f], "new": values[f], "reason": reason})
        return changed

    def verify(self, submission_id: int, user: User) -> None:
        """Locks the submission as verified by `user`: not its uploader, every value present, no hard rule broken."""
        with Session(self.engine) as session, session.begin():
            review = self._lock(session, submission_id)
            view = self.view(submission_id)
            refusal = _verify_refusal(view, user)
            if refusal is None:
                if review is None:
                    review = ReviewRow(submission_id=submission_id, state="open")
                    session.add(review)
                review.state, review.verified_by, review.verified_at = "verified", user.id, datetime.now(timezone.utc)
                self._log(session, user, "verify", submission_id, {"submission": view.result.submission,
                                                                   "values": view.values})
            elif isinstance(refusal, FourEyes):  # an attempt worth keeping in the log
                self._log(session, user, "verify_refused", submission_id, {"reason": "four_eyes"})
        if refusal is not None:
            raise refusal

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
            self._log(session, user, "reopen", submission_id, {"reason": reason, "was_verified_by": previous})

    # --- exports --------------------------------------------------------------------------------------------------

    def verified(self) -> Iterator[SubmissionView]:
        """Every verified submission, oldest first."""
        with Session(self.engine) as session:
            ids = list(session.scalars(select(ReviewRow.submission_id).where(ReviewRow.state == "verified")
                                       .order_by(ReviewRow.submission_id)))
        for submission_id in ids:
            view = self.view(submission_id)
            if view is not None:
                yield view

    def corrected_fields(self) -> Iterator[tuple[SubmissionView, str, Correction]]:
        """(submission, field, its newest correction) for every corrected field, for retraining the classifier."""
        with Session(self.engine) as session:
            ids = list(session.scalars(select(CorrectionRow.submission_id).distinct().order_by(CorrectionRow.submission_id)))
        for submission_id in ids:
            view = self.view(submission_id)
            if view is not None:
                for field_id, correction in view.corrected.items():
                    yield view, field_id, correction

    # --- dashboard ------------------------------------------------------------------------------------------------

    def dashboard(self, hours: int = 24) -> dict[str, Any]:
        """Counts by status and region, reads per hour over the last `hours`, review reasons, vote totals by region
        (machine reads of every submission beside the effective values of verified ones)."""
        with self.engine.connect() as connection:  # Core rows: no ORM bookkeeping over 10,000s of them
            subs = connection.execute(select(SubmissionRow.id, SubmissionRow.submission, SubmissionRow.status,
                                          ReviewRow.state, SubmissionRow.created_at)
                                   .outerjoin(ReviewRow, ReviewRow.submission_id == SubmissionRow.id)).all()
            reasons = connection.scalars(select(FieldRow.reasons).where(FieldRow.status.in_(FLAGGED))).all()
            votes = connection.execute(select(FieldRow.submission_id, FieldRow.field_id, FieldRow.value)
                                    .where(FieldRow.field_id.in_(_vote_fields()))).all()
            corrections = connection.execute(select(CorrectionRow.submission_id, CorrectionRow.field_id,
                                                 CorrectionRow.new_value).order_by(CorrectionRow.id)).all()
        region = {i: region_of(name) for i, name, *_ in subs}
        verified = {i for i, _, _, state, _ in subs if state == "verified"}
        by_status: Counter = Counter()
        by_region: dict[str, Counter] = defaultdict(Counter)
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        start = now - timedelta(hours=hours - 1)
        per_hour = Counter()
        for i, _, status, state, at in subs:
            label = "verified" if state == "verified" else status
            by_status[label] += 1
            by_region[region[i]][label] += 1
            at = _utc(at).replace(minute=0, second=0, microsecond=0)
            if at >= start:
                per_hour[at] += 1
        reason_counts = Counter(r.split(":", 1)[0] for rs in reasons for r in rs)
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
            total=len(subs), by_status=dict(by_status),
            by_region={r: dict(c) for r, c in sorted(by_region.items())},
            per_hour=[(f"{at:%d %b %H}:00", per_hour[at]) for at in (start + timedelta(hours=h) for h in range(hours))],
            reasons=reason_counts.most_common(),
            vote_columns=sorted(columns, key=lambda c: (c == "suara_kolom_kosong", len(c), c)),
            votes={r: {"machine": dict(machine[r]), "verified": dict(checked[r]),
                       "verified_count": sum(1 for i in verified if region[i] == r)} for r in sorted(machine)})

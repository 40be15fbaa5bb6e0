"""The import: a checked bundle merged into the centre's database, one transaction per submission.

A submission is known by its origin office and the office's id (`sync_ledger`), its corrections by their place in
its list (never edited nor deleted), its audit entries by the office's ids:
- new to the centre (no row with its name and photos): stored as the office has it, with its review, corrections
  and audit entries; the office's people become inactive accounts `<name>@<office>` (named, never able to log in);
- a row the centre has already (imported before, or the same photos sent to it directly): kept. The office's new
  corrections are replayed on it where the centre's value is still the one the office corrected, never on a
  submission the centre verified (locked). Any value that still differs makes the office's values an external
  source `<office>#<id>` of the TPS (`sources.py`): a `source_conflict` beside the centre's value, never an
  overwrite; logged as `sync_conflict`. The office's verification holds where nothing differs.
- a submission member imported before (the same sha256), or older than the one imported, is skipped whole; each
  correction and audit entry is taken once.
A submission's photos go into the photo store before its transaction: a photo without its row is harmless, a row
without its photo is not. So a `kill -9` leaves each submission merged whole or not at all, and a re-run does the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ocr.db.store import ResultStore
from ocr.db.tables import (
    AuditRow,
    CorrectionRow,
    ExternalSourceRow,
    FieldRow,
    ReviewRow,
    SubmissionRow,
    SyncBundleRow,
    SyncLedgerRow,
    UserRow,
)
from ocr.review.audit import record, utc
from ocr.review.sources import Sources, put_numbers, tps_key
from ocr.review.sync.bundle import Bundle, Refusal, open_bundle, read_json
from ocr.review.sync.content import OFFICE_MEMBER, PHOTOS, SUBMISSIONS, OfficeRecords, SyncedAudit, SyncedSubmission
from ocr.review.sync.keys import trusted
from ocr.review.workflow import Reviews
from ocr.run.photo_store import PhotoStore

NO_PASSWORD = "!"  # no argon2 hash: an office's account at the centre never logs in (and is inactive too)


@dataclass
class ImportReport:
    bundle: str
    origin: str
    submissions: int = 0  # in the bundle
    merged: int = 0  # merged by this import
    unchanged: int = 0  # imported before: skipped
    photos: int = 0  # put in the photo store now
    conflicts: list[str] = field(default_factory=list)  # `<tps key> source_conflict: ...`, one per field and pair


def _centre_values(session: Session, submission_id: int) -> dict[str, int | None]:
    """The centre's effective values of a submission, read in `session` (the merge's own writes included)."""
    values = dict(session.execute(select(FieldRow.field_id, FieldRow.value)
                                  .where(FieldRow.submission_id == submission_id)).all())
    values.update(session.execute(select(CorrectionRow.field_id, CorrectionRow.new_value)
                                  .where(CorrectionRow.submission_id == submission_id).order_by(CorrectionRow.id)).all())
    return values


class _Merger:
    def __init__(self, store: ResultStore, photos: PhotoStore, bundle: Bundle, roles: dict[str, str]) -> None:
        self.store, self.photos, self.bundle, self.roles = store, photos, bundle, roles
        self.origin, self.until = bundle.manifest.origin, bundle.manifest.until
        self.photos_put = 0

    def _user(self, session: Session, name: str | None) -> int | None:
        """The centre's account of the office's user `name`, made (inactive) when first named."""
        if name is None:
            return None
        local = f"{name}@{self.origin}"
        user_id = session.scalar(select(UserRow.id).where(UserRow.name == local))
        if user_id is None:
            row = UserRow(name=local, role=self.roles.get(name, "operator"), password_hash=NO_PASSWORD, active=False)
            session.add(row)
            session.flush()
            user_id = row.id
        return user_id

    def _taken(self, session: Session, kind: str, ref: int | str) -> bool:
        return session.get(SyncLedgerRow, (self.origin, kind, str(ref))) is not None

    def _take(self, session: Session, kind: str, ref: int | str, local_id: int | None, **more: Any) -> None:
        session.merge(SyncLedgerRow(origin=self.origin, kind=kind, ref=str(ref), local_id=local_id, **more))

    def _audit(self, session: Session, entries: list[SyncedAudit], submission_id: int | None) -> None:
        for entry in entries:
            if not self._taken(session, "audit", entry.id):
                row = AuditRow(at=entry.at, user_id=self._user(session, entry.user), action=entry.action,
                               submission_id=submission_id, detail=entry.detail | {"origin": self.origin})
                session.add(row)
                session.flush()
                self._take(session, "audit", entry.id, row.id)

    def submission(self, synced: SyncedSubmission, digest: str) -> tuple[bool, str | None]:
        """Merges one submission in its own transaction: whether it was (not: imported before as it is), and the TPS
        key when its values conflict with the centre's."""
        for page in synced.result.pages:  # before the transaction: see the module's docstring
            name = f"{PHOTOS}{page.sha256}"
            if page.sha256 and name in self.bundle.manifest.members and not self.photos.photo_path(page.sha256).exists():
                self.photos.put(self.bundle.read(name))
                self.photos_put += 1
        result = synced.result
        with Session(self.store.engine) as session, session.begin():
            seen = session.get(SyncLedgerRow, (self.origin, "submission", str(synced.id)))
            if seen is not None and (seen.digest == digest or utc(seen.exported_at) > self.until):
                return False, None
            submission_id = session.scalar(select(SubmissionRow.id).where(
                SubmissionRow.submission == result.submission, SubmissionRow.photos_key == result.photos_key)
                .with_for_update())
            if submission_id is None:
                submission_id = self.store.replace(session, result)
            review, office = session.get(ReviewRow, submission_id), synced.review
            if review is None and (office.uploaded_by is not None or office.state == "verified"):
                review = ReviewRow(submission_id=submission_id, state="open",
                                   uploaded_by=self._user(session, office.uploaded_by))
                session.add(review)
            locked = review is not None and review.state == "verified"
            values = _centre_values(session, submission_id)
            for n, c in enumerate(synced.corrections):
                ref = f"{synced.id}:{n}"
                if self._taken(session, "correction", ref):
                    continue
                local_id = None  # held: the centre changed the field, or locked it
                if not locked and c.field_id in values and values[c.field_id] == c.old_value:
                    row = CorrectionRow(submission_id=submission_id, field_id=c.field_id, old_value=c.old_value,
                                        new_value=c.new_value, reason=c.reason, user_id=self._user(session, c.user),
                                        created_at=c.at)
                    session.add(row)
                    session.flush()
                    local_id, values[c.field_id] = row.id, c.new_value
                self._take(session, "correction", ref, local_id)
            self._audit(session, synced.audit, submission_id)
            place = result.place
            key = tps_key(place.desa if place else None, place.tps if place else None,
                          place.election if place else None, result.submission)
            source, theirs = f"{self.origin}#{synced.id}", synced.values
            differ = {f: {"centre": values.get(f), "office": v} for f, v in theirs.items() if values.get(f) != v}
            if differ:
                put_numbers(session, source, result.template or "-", {key: theirs})
                record(session, None, "sync_conflict", submission_id,
                       {"origin": self.origin, "source": source, "tps": key, "fields": differ})
            else:  # agreeing now: an earlier conflict of this office's submission is settled
                session.execute(delete(ExternalSourceRow).where(ExternalSourceRow.source == source,
                                                                ExternalSourceRow.tps_key == key))
                if office.state == "verified" and not locked:
                    review.state, review.verified_at = "verified", office.verified_at
                    review.verified_by = self._user(session, office.verified_by)
            self._take(session, "submission", synced.id, submission_id, digest=digest, exported_at=self.until)
        return True, key if differ else None

    def finish(self, office: OfficeRecords, report: ImportReport) -> None:
        """The office's other audit entries, and the bundle marked imported (logged the first time only)."""
        manifest = self.bundle.manifest
        with Session(self.store.engine) as session, session.begin():
            self._audit(session, office.audit, None)
            if session.get(SyncBundleRow, (manifest.bundle, "import")) is None:
                session.add(SyncBundleRow(id=manifest.bundle, direction="import", origin=self.origin,
                                          since=manifest.since, until=manifest.until, submissions=report.submissions))
                record(session, None, "sync_import", None, {
                    "bundle": manifest.bundle, "origin": self.origin, "submissions": report.submissions,
                    "merged": report.merged, "conflicts": len(report.conflicts)})


def import_bundle(store: ResultStore, photos: PhotoStore, stream: IO[bytes]) -> ImportReport | Refusal:
    """Merges the bundle in `stream` into the centre's database at `store` and its photos into `photos`; what was
    done, or why the bundle is refused (then nothing is written)."""
    with open_bundle(stream, lambda office: trusted(store.engine, office)) as bundle:
        if isinstance(bundle, Refusal):
            return bundle
        office = read_json(bundle, OFFICE_MEMBER, OfficeRecords)
        if isinstance(office, Refusal):
            return office
        submissions = []
        for name in bundle.names(SUBMISSIONS):  # every member read before anything is written
            synced = read_json(bundle, name, SyncedSubmission)
            if isinstance(synced, Refusal):
                return synced
            submissions.append((synced, hashlib.sha256(bundle.read(name)).hexdigest()))
        report = ImportReport(bundle.manifest.bundle, bundle.manifest.origin, len(submissions))
        merger = _Merger(store, photos, bundle, office.users)
        conflicted: dict[str, str] = {}
        for synced, digest in submissions:
            merged, key = merger.submission(synced, digest)
            if not merged:
                report.unchanged += 1
                continue
            report.merged += 1
            if key is not None:
                conflicted[f"{report.origin}#{synced.id}"] = key
        sources = Sources(Reviews(store))
        report.conflicts = [f"{key} {c}" for source, key in conflicted.items() for c in sources.of(key).conflicts
                            if source in (c.first.label, c.second.label)]
        report.photos = merger.photos_put
        merger.finish(office, report)
    return report


"""Offline offices, then sync (issue 21): an office's export imported into the centre twice adds nothing the second
time; a field the centre changed meanwhile becomes a source_conflict, never an overwrite; one byte changed anywhere in
a bundle, or a key the centre does not trust, is refused with nothing written; a `kill -9` mid-import leaves every
submission whole or absent, and a re-run ends where a clean import does. The centre on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from cli import main
from ocr.db.store import ResultStore, default_url
from ocr.db.tables import (
    AuditRow,
    CorrectionRow,
    ExternalSourceRow,
    FieldRow,
    PageRow,
    ReviewRow,
    SubmissionRow,
    SyncBundleRow,
    SyncLedgerRow,
    UserRow,
)
from ocr.record import SubmissionResult, TpsIdentity
from ocr.review.accounts import User, hash_password
from ocr.review.sources import Sources, tps_key
from ocr.review.sync.bundle import Refusal, RefusalCode
from ocr.review.sync.content import ExportReport, export_bundle
from ocr.review.sync.keys import OfficeKey, new_key, trust
from ocr.review.sync.merge import ImportReport, import_bundle
from ocr.review.workflow import Reviews
from ocr.run.photo_store import PhotoStore
from tests.db.test_store import tally

REPO = Path(__file__).resolve().parents[2]
DESA = "3204052001"
TABLES = (SubmissionRow, PageRow, FieldRow, ReviewRow, CorrectionRow, AuditRow, UserRow, ExternalSourceRow,
          SyncLedgerRow, SyncBundleRow)
PASSWORD = "a long password"


def office_read(n: int) -> tuple[SubmissionResult, list[bytes]]:
    """The office's read of TPS n+1 and its photos (the pages' sha256 are theirs)."""
    base = tally("review", 70 + n)
    photos = [f"photo of tps {n} page {j}".encode() for j in range(len(base.pages))]
    pages = [p.model_copy(update={"sha256": hashlib.sha256(data).hexdigest()}) for p, data in zip(base.pages, photos)]
    return base.model_copy(update={"submission": f"tps-{n}", "photos_key": f"{n + 1:064x}", "pages": pages,
                                   "place": TpsIdentity(desa=DESA, tps=n + 1, election="gubernur")}), photos


@dataclass
class Office:
    """An office's laptop: its SQLite database, photo store and key; a reviewer `ana` and a verifier `budi`."""

    store: ResultStore
    photos: PhotoStore
    key: OfficeKey
    ana: User
    budi: User

    @property
    def reviews(self) -> Reviews:
        return Reviews(self.store)

    def export(self, out: Path, since: datetime | None = None) -> ExportReport:
        return export_bundle(self.store, self.photos, self.key, out, since)


def make_office(tmp: Path, n: int = 3) -> Office:
    store, photos = ResultStore(default_url(tmp / "office.db")), PhotoStore(tmp / "office-photos")
    for i in range(n):
        result, data = office_read(i)
        store.save(result)
        for photo in data:
            photos.put(photo)
    reviews = Reviews(store)
    office = Office(store, photos, new_key(f"kec-{uuid.uuid4().hex[:8]}"),
                    reviews.add_user("ana", "reviewer", hash_password(PASSWORD)),
                    reviews.add_user("budi", "reviewer", hash_password(PASSWORD)))
    reviews.correct(reviews.id_of("tps-0", f"{1:064x}"), office.ana, {"suara_sah": 316}, "the sheet says 316")
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    with store.engine.begin() as connection:  # verified by budi (the test read lacks fields a real verify checks)
        connection.execute(insert(ReviewRow).values(submission_id=reviews.id_of("tps-1", f"{2:064x}"), state="verified",
                                                    verified_by=office.budi.id, verified_at=hour_ago))
        # All of it an hour old, so that what a test does next is what changed since an export.
        connection.execute(update(SubmissionRow).values(created_at=hour_ago, updated_at=hour_ago))
        connection.execute(update(CorrectionRow).values(created_at=hour_ago))
        connection.execute(update(AuditRow).values(at=hour_ago))
    return office


@pytest.fixture
def office(tmp_path):
    office = make_office(tmp_path)
    yield office
    office.store.close()


@dataclass
class Centre:
    store: ResultStore
    photos: PhotoStore

    def import_(self, bundle: Path) -> ImportReport | Refusal:
        with bundle.open("rb") as stream:
            return import_bundle(self.store, self.photos, stream)

    def counts(self) -> dict[str, int]:
        with Session(self.store.engine) as session:
            return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in TABLES}


@pytest.fixture
def centre(url, tmp_path, office):
    with ResultStore(url) as store:
        trust(store.engine, office.key.office, office.key.public)
        yield Centre(store, PhotoStore(tmp_path / "centre-photos"))


def test_export_then_import_twice_adds_nothing_the_second_time(office, centre, tmp_path):
    bundle = tmp_path / "b1.zip"
    exported = office.export(bundle)
    assert (exported.submissions, exported.photos, exported.photos_missing) == (3, 6, 0)
    before = centre.counts()
    first = centre.import_(bundle)
    assert (first.submissions, first.merged, first.unchanged, first.photos, first.conflicts) == (3, 3, 0, 6, [])
    after = centre.counts()
    assert after["submissions"] - before["submissions"] == 3 and after["corrections"] - before["corrections"] == 1
    again = centre.import_(bundle)
    assert (again.merged, again.unchanged, again.photos) == (0, 3, 0)
    assert centre.counts() == after  # nothing twice, not even a second log entry

    reviews = Reviews(centre.store)
    origin = office.key.office
    tps0 = reviews.view(reviews.id_of("tps-0", f"{1:064x}"))
    assert tps0.result == office_read(0)[0]  # the same record
    assert tps0.values["suara_sah"] == 316 and tps0.corrections[0].user == f"ana@{origin}"
    tps1 = reviews.view(reviews.id_of("tps-1", f"{2:064x}"))
    assert (tps1.state, tps1.verified_by) == ("verified", f"budi@{origin}")
    assert reviews.credentials(f"ana@{origin}") is None  # an office's account never logs in at the centre
    for page in tps0.result.pages:
        assert centre.photos.photo_path(page.sha256).read_bytes() == office.photos.photo_path(page.sha256).read_bytes()
    log = [(e["action"], e["detail"].get("origin")) for e in reviews.audit(20)]
    assert ("sync_import", origin) in log and ("correct", origin) in log and log.count(("sync_import", origin)) == 1


def test_a_field_the_centre_changed_becomes_a_source_conflict_never_an_overwrite(office, centre, tmp_path):
    first = office.export(tmp_path / "b1.zip")
    centre.import_(tmp_path / "b1.zip")
    reviews, origin = Reviews(centre.store), office.key.office
    sid = reviews.id_of("tps-2", f"{3:064x}")
    rina = reviews.add_user(f"rina-{uuid.uuid4().hex[:6]}", "reviewer", hash_password(PASSWORD))
    reviews.correct(sid, rina, {"suara_paslon_1": 130}, "the centre reads 130 on the plano")
    office_id = office.reviews.id_of("tps-2", f"{3:064x}")
    # Meanwhile the office corrects the same field otherwise, and another field the centre left alone.
    office.reviews.correct(office_id, office.ana, {"suara_paslon_1": 127, "suara_paslon_2": 245}, "recounted")
    second = office.export(tmp_path / "b2.zip", since=first.manifest.until)
    assert second.submissions == 1  # only what changed since

    report = centre.import_(tmp_path / "b2.zip")
    key = tps_key(DESA, 3, "gubernur", "")
    line = f"{key} source_conflict: suara_paslon_1 tps-2 130 vs {origin}#{office_id} 127"
    assert report.conflicts == [line]
    view = reviews.view(sid)
    assert view.values["suara_paslon_1"] == 130  # the centre's value stands
    assert view.values["suara_paslon_2"] == 245  # the office's other correction arrives: nothing lost
    tps = Sources(reviews).of(key)
    assert tps.chosen.submission_id == sid and [str(c) for c in tps.conflicts] == [line.split(" ", 1)[1]]
    entry = next(e for e in reviews.audit(20) if e["action"] == "sync_conflict")
    assert entry["detail"]["fields"] == {"suara_paslon_1": {"centre": 130, "office": 127}}
    counts = centre.counts()
    assert centre.import_(tmp_path / "b2.zip").merged == 0 and centre.counts() == counts
    assert centre.import_(tmp_path / "b1.zip").merged == 0 and centre.counts() == counts  # an older bundle: skipped


def flipped(bundle: Path, at: int, out: Path) -> Path:
    data = bytearray(bundle.read_bytes())
    data[at] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def test_one_byte_changed_anywhere_is_refused_and_nothing_is_written(tmp_path, url):
    office = make_office(tmp_path, n=1)
    bundle = tmp_path / "b.zip"
    office.export(bundle)
    office.store.close()
    size = len(bundle.read_bytes())
    with ResultStore(url) as store:
        trust(store.engine, office.key.office, office.key.public)
        centre = Centre(store, PhotoStore(tmp_path / "centre-photos"))
        before = centre.counts()
        codes = {}
        for at in range(size):
            refusal = centre.import_(flipped(bundle, at, tmp_path / "changed.zip"))
            assert isinstance(refusal, Refusal), f"byte {at} of {size} changed and the bundle was imported"
            codes[refusal.code] = codes.get(refusal.code, 0) + 1
        assert centre.counts() == before and not any((tmp_path / "centre-photos").iterdir())
        # Member bytes are caught by their hash, headers and the signature by the signature.
        assert {RefusalCode.MEMBER_HASH_MISMATCH, RefusalCode.BAD_SIGNATURE} <= set(codes)
        assert isinstance(centre.import_(bundle), ImportReport)  # the bundle itself is fine


def test_a_bundle_signed_by_a_key_the_centre_does_not_trust_is_refused(office, tmp_path, url):
    bundle = tmp_path / "b.zip"
    office.export(bundle)
    with ResultStore(url) as store:
        centre = Centre(store, PhotoStore(tmp_path / "centre-photos"))
        before = centre.counts()
        unknown = centre.import_(bundle)
        assert unknown.code == RefusalCode.UNKNOWN_SIGNER and office.key.office in str(unknown)
        trust(store.engine, office.key.office, new_key(office.key.office).public)  # another laptop's key
        other = centre.import_(bundle)
        assert other.code == RefusalCode.BAD_SIGNATURE
        assert centre.counts() == {**before, "audit_log": before["audit_log"] + 1}  # only the trust was logged


KILLED_IMPORT = """
import sys, time
from pathlib import Path
from ocr.db.store import ResultStore
from ocr.review.sync.merge import import_bundle
from ocr.run.photo_store import PhotoStore

url, bundle, photos, marker, k = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
saved = ResultStore.replace
calls = []

def replace(self, session, result):
    # Submission k+1 stops inside its transaction, its rows written but not committed: the test kills us there.
    submission_id = saved(self, session, result)
    calls.append(submission_id)
    if len(calls) == k + 1:
        session.flush()
        marker.write_text("mid-transaction")
        time.sleep(60)
    return submission_id

ResultStore.replace = replace
with ResultStore(url) as store, bundle.open("rb") as stream:
    import_bundle(store, PhotoStore(photos), stream)
"""


def dump(store: ResultStore, origin: str) -> list[tuple]:
    """The centre's content without its ids: each submission with its pages, values, review, corrections and log; the
    office's accounts and its other entries in the log."""
    reviews = Reviews(store)
    with Session(store.engine) as session:
        ids = session.scalars(select(SubmissionRow.id).order_by(SubmissionRow.submission)).all()
        users = sorted(session.scalars(select(UserRow.name).where(UserRow.name.like(f"%@{origin}"))))
        # The import's own entry says how many that run merged: the re-run's count is its own.
        office_log = sorted(repr(sorted((k, v) for k, v in d.items() if k != "merged")) for d in session.scalars(
            select(AuditRow.detail).where(AuditRow.submission_id.is_(None))) if d.get("origin") == origin)
    views = [reviews.view(i) for i in ids]
    return [(v.result, v.values, v.state, v.verified_by, [(c.field_id, c.new_value, c.user) for c in v.corrections],
             [(e["action"], e["user"], sorted(e["detail"].items())) for e in reviews.audit(50, v.id)]) for v in views] + [
        tuple(users), tuple(office_log)]


def test_kill_9_mid_import_leaves_the_centre_consistent_and_a_rerun_completes_it(tmp_path, url):
    office, n, k = make_office(tmp_path, n=12), 12, 5
    bundle = tmp_path / "b.zip"
    exported = office.export(bundle)
    office.store.close()
    marker = tmp_path / "marker"
    with ResultStore(url) as store:
        trust(store.engine, office.key.office, office.key.public)
        centre = Centre(store, PhotoStore(tmp_path / "centre-photos"))
        importer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_IMPORT), url, str(bundle),
                                     str(centre.photos.root), str(marker), str(k)], cwd=REPO,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.time() + 60
        while not marker.exists():
            assert importer.poll() is None and time.time() < deadline, "the import ended before submission k+1"
            time.sleep(0.02)
        os.kill(importer.pid, signal.SIGKILL)
        importer.wait()

        with Session(store.engine) as session:
            done = session.scalars(select(SyncLedgerRow.local_id).where(
                SyncLedgerRow.origin == office.key.office, SyncLedgerRow.kind == "submission")).all()
            stored = session.scalars(select(SubmissionRow.id)).all()
            assert len(done) == k and sorted(done) == sorted(stored)  # k merged, the (k+1)th not even in part
            for sid in stored:
                assert session.scalar(select(func.count()).where(PageRow.submission_id == sid)) == 2
                assert session.scalar(select(func.count()).where(FieldRow.submission_id == sid)) == 5
            assert session.get(SyncBundleRow, (exported.manifest.bundle, "import")) is None  # not done
        assert all(centre.photos.photo_path(p.sha256).exists() for sid in stored
                   for p in store.get_by_id(sid).pages)

        rerun = centre.import_(bundle)
        assert (rerun.merged, rerun.unchanged) == (n - k, k)
        with ResultStore(default_url(tmp_path / "clean.db")) as clean:
            trust(clean.engine, office.key.office, office.key.public)
            Centre(clean, PhotoStore(tmp_path / "clean-photos")).import_(bundle)
            assert dump(store, office.key.office) == dump(clean, office.key.office)


def test_formc_sync_keygen_trust_export_import_and_a_refusal_exits_1(tmp_path):
    runner = CliRunner()
    office_db, centre_db = default_url(tmp_path / "office.db"), default_url(tmp_path / "centre.db")
    with ResultStore(office_db) as store:
        store.save(office_read(0)[0])
    made = runner.invoke(main, ["sync", "keygen", "kec-cibiru", "--out", str(tmp_path / "office.key")])
    assert made.exit_code == 0, made.output
    office, public = made.stdout.split()
    assert runner.invoke(main, ["sync", "trust", office, public, "--db", centre_db]).exit_code == 0
    export = ["sync", "export", "--db", office_db, "--key", str(tmp_path / "office.key"), "--store", str(tmp_path / "none")]
    exported = runner.invoke(main, [*export, "--out", str(tmp_path / "b.zip")])
    assert exported.exit_code == 0 and "1 submissions, 0 photos from kec-cibiru" in exported.stderr
    imported = ["sync", "import", str(tmp_path / "b.zip"), "--db", centre_db, "--store", str(tmp_path / "photos")]
    first, second = runner.invoke(main, imported), runner.invoke(main, imported)
    assert "1 submissions, 1 merged, 0 imported before" in first.stderr
    assert "1 submissions, 0 merged, 1 imported before" in second.stderr
    since_last = runner.invoke(main, [*export, "--out", str(tmp_path / "b2.zip"), "--since", "last"])
    assert since_last.exit_code == 0 and " changed since 20" in since_last.stderr
    flipped(tmp_path / "b.zip", 100, tmp_path / "changed.zip")
    refused = runner.invoke(main, ["sync", "import", str(tmp_path / "changed.zip"), "--db", centre_db])
    assert refused.exit_code == 1 and "member_hash_mismatch" in refused.output
    assert runner.invoke(main, ["sync", "keygen", "kec-cibiru", "--out", str(tmp_path / "office.key")]).exit_code == 1

"""Finding any TPS (issue 19): the filters of the review queue and of the list of all submissions, the audit log as a
filtered, paged table with the client address, and the queue position of an upload that waits. TestClient on a real
SQLite database; the submissions are copies of one stored read (tests/db/test_store.py's), under names of their own."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from ocr.db.store import default_url
from ocr.db.tables import ReviewRow, SubmissionRow
from ocr.review.accounts import hash_password
from ocr.review.workflow import Reviews
from ocr.web.app import create_app
from tests.db.test_store import tally
from tests.web.conftest import PASSWORD, csrf_of, log_in

USERS = {"olga": "operator", "rudi": "reviewer", "rina": "reviewer", "ade": "admin"}
MANY = 105  # open submissions in one kecamatan: more than a page of 100


class Site:
    def __init__(self, app) -> None:
        self.app = app
        self.reviews: Reviews = app.state.reviews
        self.users = {name: self.reviews.add_user(name, role, hash_password(PASSWORD)) for name, role in USERS.items()}
        self.ids: dict[str, int] = {}

    def save(self, *names: str, status: str = "review") -> None:
        """Copies of the stored read under `names`, each with photos of its own."""
        results = [tally(status).model_copy(update={"submission": name, "photos_key": f"{len(self.ids) + i:064x}"})
                   for i, name in enumerate(names)]
        self.reviews.store.save_many(results)
        self.ids.update({r.submission: self.reviews.id_of(r.submission, r.photos_key) for r in results})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("find")
    app = create_app(default_url(tmp / "results.db"), tmp / "store", secret="test-secret")
    with TestClient(app):
        s = Site(app)
        s.save(*(f"kab-a/kec-1/tps-{n:03d}" for n in range(1, MANY + 1)))
        s.save("kab-a/kec-2/tps-001", "kab-c/tpsx1", "kab-c/tps_1", status="ok")
        s.save("kab-b/kec-1/tps-007", status="rejected")
        s.save("kab-b/kec-1/tps-002", "kab-ab/tps-001")
        s.reviews.correct(s.ids["kab-a/kec-2/tps-001"], s.users["rudi"], {"suara_paslon_1": 71}, "boxes misread")
        with s.reviews.store.engine.begin() as db:  # verified as a second reviewer would (the rules aside)
            db.execute(ReviewRow.__table__.insert().values(submission_id=s.ids["kab-b/kec-1/tps-002"], state="verified",
                                                           verified_by=s.users["rina"].id,
                                                           verified_at=datetime.now(timezone.utc)))
            # Read at 20:00 UTC on 27 November: 03:00 on the 28th in WIB, the server's zone.
            db.execute(update(SubmissionRow).where(SubmissionRow.id == s.ids["kab-c/tpsx1"])
                       .values(created_at=datetime(2024, 11, 27, 20, tzinfo=timezone.utc)))
        yield s


def listed(client: TestClient, url: str) -> list[str]:
    """The TPS names a list page shows, in its order."""
    response = client.get(url)
    assert response.status_code == 200, url
    return re.findall(r'<a href="/(?:review|submissions)/\d+">([^<]+)</a></td>', response.text)


def reviewer(site: Site, name: str = "rudi") -> TestClient:
    client = TestClient(site.app)
    log_in(client, name)
    return client


def test_the_queue_by_region_prefix_pages_past_100_with_the_filter_in_its_links(site):
    client = reviewer(site)
    first = client.get("/queue?region=kab-a/kec-1")
    assert f"Menampilkan 1-100 dari {MANY}." in first.text
    assert 'value="kab-a/kec-1"' in first.text  # the form shows the filter it applied
    assert 'href="/queue?region=kab-a%2Fkec-1&amp;page=2"' in first.text
    second = listed(client, "/queue?region=kab-a%2Fkec-1&page=2")
    assert len(second) == MANY - 100 and all(n.startswith("kab-a/kec-1/") for n in second)
    pages = listed(client, "/queue?region=kab-a/kec-1") + second
    assert sorted(pages) == sorted(n for n in site.ids if n.startswith("kab-a/kec-1/"))  # each once
    assert "Sebelumnya" in client.get("/queue?region=kab-a%2Fkec-1&page=2").text
    # A prefix of the name, whole segments or not, in any case: kab-a also finds kab-ab, as the name starts so.
    assert set(listed(client, "/queue?region=KAB-A/KEC-2")) == {"kab-a/kec-2/tps-001"}
    assert f"dari {MANY + 2}." in client.get("/submissions?region=kab-a").text  # kec-1, kec-2 and kab-ab


def test_a_tps_filter_is_a_part_of_the_name_with_wildcards_taken_literally(site):
    client = reviewer(site)
    assert listed(client, "/submissions?tps=tps_1") == ["kab-c/tps_1"]  # '_' is not LIKE's any-character
    assert set(listed(client, "/submissions?tps=TPS-00&region=kab-b")) == {"kab-b/kec-1/tps-007", "kab-b/kec-1/tps-002"}
    assert listed(client, "/queue?tps=105") == ["kab-a/kec-1/tps-105"]


def test_status_filters_tell_verified_from_the_machines_status(site):
    client = reviewer(site)
    assert listed(client, "/submissions?status=verified") == ["kab-b/kec-1/tps-002"]
    assert listed(client, "/submissions?status=rejected") == ["kab-b/kec-1/tps-007"]
    assert "kab-b/kec-1/tps-002" not in listed(client, "/submissions?status=review&region=kab-b")  # verified now
    assert set(listed(client, "/queue?status=ok")) == {"kab-a/kec-2/tps-001", "kab-c/tpsx1", "kab-c/tps_1"}
    assert "kab-b/kec-1/tps-002" not in listed(client, "/queue?region=kab-b")  # the queue holds open ones only
    page = client.get("/submissions?status=verified").text
    assert '<span class="badge verified">terverifikasi</span>' in page and ">rina<" in page


def test_the_reviewer_filter_finds_what_someone_corrected_or_verified(site):
    client = reviewer(site)
    assert listed(client, "/queue?reviewer=rudi") == ["kab-a/kec-2/tps-001"]
    assert listed(client, "/submissions?reviewer=rina") == ["kab-b/kec-1/tps-002"]
    assert listed(client, "/submissions?reviewer=ade") == []


def test_read_dates_are_days_in_the_servers_zone(site):
    client = reviewer(site)
    assert listed(client, "/submissions?from=2024-11-28&to=2024-11-28") == ["kab-c/tpsx1"]  # 03:00 WIB
    assert listed(client, "/submissions?to=2024-11-27") == []
    assert "kab-c/tpsx1" not in listed(client, f"/queue?from={datetime.now(timezone.utc):%Y-%m-%d}")
    bad = client.get("/submissions?from=28-11-2024&tps=tps_1")
    assert "Tulis tanggal sebagai TTTT-BB-HH" in bad.text and listed(client, "/submissions?from=28-11&tps=tps_1") == [
        "kab-c/tps_1"]  # the other filters still hold


def test_an_empty_result_says_so(site):
    client = reviewer(site)
    queue = client.get("/queue?region=kab-zzz")
    assert queue.status_code == 200 and "Tidak ada kiriman terbuka yang cocok dengan saringan ini." in queue.text
    assert "<table" not in queue.text and "Tidak ada yang perlu diperiksa" not in queue.text
    assert "Tidak ada kiriman yang cocok" in client.get("/submissions?status=error").text
    assert "Tidak ada kiriman yang cocok" in client.get("/submissions?status=nonsense").text
    assert "1 seluruhnya; tidak ada di halaman ini." in client.get("/submissions?tps=tps_1&page=9").text


def test_an_operator_may_not_list_submissions(site):
    client = TestClient(site.app)
    log_in(client, "olga")
    assert client.get("/submissions").status_code == 403


def test_the_audit_log_filters_pages_and_shows_the_client_address(site):
    with TestClient(site.app, client=("10.2.0.7", 40000)) as stranger:
        stranger.post("/login", data={"name": "olga", "password": "wrong guess", "csrf": csrf_of(stranger.get("/login").text)})
    for n in range(130):
        site.reviews.log(site.users["rina"], "export", kind="results.csv", records=n)
    target = site.ids["kab-a/kec-2/tps-001"]
    with TestClient(site.app, client=("10.2.0.8", 40000)) as admin:
        log_in(admin, "ade")
        first = admin.get("/audit?user=rina&action=export")
        assert "Menampilkan 1-100 dari 130." in first.text and first.text.count('data-label="tindakan">ekspor<') == 100
        assert 'href="/audit?user=rina&amp;action=export&amp;page=2"' in first.text
        assert admin.get("/audit?user=rina&action=export&page=2").text.count("ekspor</td>") == 30
        # Not cut at 500: every entry is on some page.
        assert f"dari {site.reviews.audit_size()}." in admin.get("/audit").text and site.reviews.audit_size() > 130
        # A failed log-in names no user but the name tried; the filter by user finds it, with the address.
        failed = admin.get("/audit?user=olga&action=login_failed").text
        assert "Menampilkan 1-1 dari 1." in failed and '<td class="address" data-label="alamat">10.2.0.7</td>' in failed
        assert "address:" not in failed and 'name: "olga"' in failed  # the address shown once, in its column
        mine = admin.get("/audit?user=ade&action=login").text
        assert '<td class="address" data-label="alamat">10.2.0.8</td>' in mine
        by_submission = admin.get(f"/audit?submission={target}").text
        assert "Menampilkan 1-1 dari 1." in by_submission and "boxes misread" in by_submission
        assert admin.get("/audit?submission=kec-2/tps-001").text.count("koreksi</td>") == 1  # by a part of its name
        assert "Menampilkan 1-1 dari 1." in admin.get(f"/audit?submission={target}&from=2000-01-01").text
        assert "Tidak ada entri yang cocok" in admin.get(f"/audit?submission={target}&to=2000-01-01").text


def test_a_waiting_upload_shows_how_many_are_ahead(tmp_path, monkeypatch):
    import ocr.web.jobs as jobs

    entered, release = threading.Event(), threading.Event()

    def slow_read(sub, templates, settings, on_read=None):  # the one reading thread held on the first upload
        entered.set()
        release.wait(60)
        return tally().model_copy(update={"submission": sub.submission, "photos_key": sub.submission[-1] * 64})

    monkeypatch.setattr(jobs, "read_one", slow_read)
    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret", workers=1)
    with TestClient(app) as client:
        app.state.reviews.add_user("olga", "operator", hash_password(PASSWORD))
        csrf = log_in(client, "olga")
        jobs_ = []
        for n in range(3):
            photo = b"\xff\xd8\xff\xe0" + bytes([n]) * 64  # a JPEG by its magic number, another for each upload
            response = client.post("/upload", data={"submission": f"kab-q/tps-{n}", "csrf": csrf},
                                   files=[("photos", ("page-1.jpg", photo, "image/jpeg"))], follow_redirects=False)
            jobs_.append(response.headers["location"])
        assert entered.wait(30)
        pages = [client.get(url).text for url in jobs_]
        release.set()
        assert "Foto sedang dibaca" in pages[0]
        assert "1 unggahan lagi di depan Anda" in pages[1] and "2 unggahan lagi di depan Anda" in pages[2]
        deadline = time.time() + 30
        while any(client.get(url, follow_redirects=False).status_code != 303 for url in jobs_):
            assert time.time() < deadline, "the uploads were not read"
            time.sleep(0.05)

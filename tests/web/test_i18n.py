"""The review app for people in an Indonesian election office (issue 19): every page in Bahasa Indonesia unless a
browser chose English, fields and rules by the labels the form prints, times in the zone `formc serve --timezone`
names. A real SQLite database, a real read of the slip sample, `formc serve` itself for the time zone."""

from __future__ import annotations

import http.cookiejar
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from bench.servers import free_port
from ocr.db.store import ResultStore, default_url
from ocr.review.accounts import hash_password
from ocr.review.throttle import ACCOUNT_LIMIT
from ocr.review.workflow import Reviews
from ocr.web.app import create_app
from ocr.web.routes_upload import MAX_UPLOAD_BYTES
from tests.web.conftest import PASSWORD, csrf_of, log_in
from tests.web.test_web import SAMPLES, upload, wait_for_submission

REPO = Path(__file__).resolve().parents[2]
# What the pages said in English before, and must not say now (visible text only, whole words).
ENGLISH = ("Log in", "Log out", "Upload", "Review queue", "Dashboard", "Audit log", "Password", "Users", "Verify",
           "Save", "Reading", "uploaded by", "hard rule", "Fields to check", "confidence", "History", "Previous",
           "Nothing", "Why", "Change", "Take", "missing", "Showing", "region", "Failed rules", "never", "active")
# Words each page must show (a page the walk reaches by a redirect is checked for its own words).
INDONESIAN = {
    "/login": ("Masuk", "Nama pengguna", "Kata sandi"),
    "/upload": ("Unggah foto satu TPS", "Foto halaman-halaman", "Unggah dan baca", "Keluar"),
    "/submissions/{sid}": ("pemeriksaan", "Aturan yang tidak terpenuhi", "foto asli", "diunggah oleh"),
    "/queue": ("Antrean pemeriksaan", "Hasil terverifikasi (CSV)", "isian untuk diperiksa", "WIB"),
    "/submissions": ("Kiriman", "Cari TPS", "Wilayah (awal nama TPS)", "diverifikasi oleh", "Menampilkan 1-1 dari 1."),
    "/review/{sid}": ("Isian yang perlu diperiksa", "Verifikasi dan kunci", "aturan wajib", "pembaca:", "Riwayat"),
    "/dashboard": ("Dasbor", "Mengapa isian perlu diperiksa", "wilayah", "aturan formulir tidak terpenuhi"),
    "/selisih": ("Selisih", "Sumber yang berbeda", "Satu lembar di bawah dua TPS"),
    "/rekap": ("Rekapitulasi", "satu baris per", "seharusnya", "Pengguna hak pilih", "Perolehan suara"),
    "/audit": ("Log audit", "tindakan", "masuk"),
    "/admin/users": ("Pengguna", "Ganti peran", "Atur ulang kata sandi", "pemeriksa", "terakhir masuk"),
    "/admin/templat": ("Templat milik kantor", "Pindaian atau foto satu halaman kosong", "Cari kotak", "Resolusi pindaian"),
    "/account/password": ("Ganti kata sandi", "Kata sandi lama", "Ulangi kata sandi baru"),
    "/publik/bupati": ("Hasil pemilihan", "TPS terverifikasi / seharusnya", "Suara terverifikasi", "Per provinsi"),
}


def visible(html: str) -> str:
    """The text a person reads: no script, no tags, no attributes."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", html, flags=re.S))


def english_on(html: str) -> list[str]:
    text = visible(html)
    return [w for w in ENGLISH if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[TestClient, int, str]]:
    """The app with the slip sample uploaded by an operator and read for real; an admin's client, the submission's id,
    the upload's job URL."""
    tmp = tmp_path_factory.mktemp("i18n")
    app = create_app(default_url(tmp / "results.db"), tmp / "store", secret="test-secret")
    with TestClient(app) as admin:
        for name, role in {"ade": "admin", "olga": "operator"}.items():
            app.state.reviews.add_user(name, role, hash_password(PASSWORD))
        with TestClient(app) as olga:
            job_url = upload(olga, log_in(olga, "olga"), "kab-x/tps-0002", SAMPLES / "tps-0002")
            submission_id = wait_for_submission(olga, job_url)
        log_in(admin, "ade")
        yield admin, submission_id, job_url


def test_every_page_is_in_indonesian_by_default(site):
    admin, submission_id, job_url = site
    pages = [r.path for r in admin.app.routes if isinstance(r, Route) and "GET" in r.methods and r.path != "/"]
    walked = set()
    for path in pages:
        url = path.replace("{sid:int}", str(submission_id)).replace("/jobs/{job_id:str}", job_url)
        if "{" in url:
            continue  # an image or a photo: no words
        response = admin.get(url)  # an export is not a page; the job's page leads to its submission once read
        if not response.headers["content-type"].startswith("text/html"):
            continue
        assert response.status_code == 200, url
        page = response.url.path.replace(f"/{submission_id}", "/{sid}")
        assert '<html lang="id">' in response.text, url
        assert not english_on(response.text), (url, english_on(response.text))
        for word in INDONESIAN[page]:
            assert word in visible(response.text), (url, word)
        walked.add(page)
    with TestClient(admin.app) as anonymous:
        login = anonymous.get("/login").text
        assert not english_on(login) and all(w in visible(login) for w in INDONESIAN["/login"])
        walked.add("/login")
    assert walked == set(INDONESIAN)  # every page the app serves, none left out


def test_the_refusal_pages_are_in_indonesian(site, tmp_path):
    admin, _, _ = site
    with TestClient(admin.app) as anonymous:
        for _ in range(ACCOUNT_LIMIT):
            anonymous.post("/login", data={"name": "olga", "password": "guess", "csrf": csrf_of(anonymous.get("/login").text)})
        throttled = anonymous.post("/login", data={"name": "olga", "password": "guess",
                                                   "csrf": csrf_of(anonymous.get("/login").text)})
    assert throttled.status_code == 429 and "Terlalu banyak percobaan masuk yang gagal" in throttled.text
    assert not english_on(throttled.text)
    # A database that cannot take a failed log-in (its table gone, as on a damaged copy): the 503 page.
    broken = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    with sqlite3.connect(tmp_path / "results.db") as db:
        db.execute("DROP TABLE login_failures")
    with TestClient(broken) as client:
        response = client.post("/login", data={"name": "rudi", "password": "guess", "csrf": csrf_of(client.get("/login").text)})
    assert response.status_code == 503 and "Basis data hasil tidak dapat digunakan saat ini" in response.text
    assert not english_on(response.text)


def test_the_plain_answers_of_the_guards_are_in_indonesian(site):
    """What a browser shows when no page can be drawn: not logged in, a role that may not, an expired form, a photo
    not in this submission, an upload over the limit."""
    admin, submission_id, _ = site
    admin.app.state.reviews.add_user("budi", "operator", hash_password(PASSWORD))  # olga may be locked out by now
    with TestClient(admin.app) as client:
        assert client.post("/upload", data={}).text == "Masuk terlebih dahulu."
        csrf = log_in(client, "budi")
        assert client.get("/admin/users").text == "Peran Anda tidak boleh membuka halaman ini."
        assert client.post("/account/password", data={"csrf": "stale"}).text.startswith("Formulir sudah kedaluwarsa")
        assert admin.get(f"/submissions/{submission_id}/photos/{'0' * 64}").text == "Foto ini tidak ada dalam kiriman ini."
        big = client.post("/upload", content=bytes(MAX_UPLOAD_BYTES + 1),
                          headers={"content-type": "multipart/form-data; boundary=x", "x-csrf-token": csrf})
    assert big.status_code == 413 and big.text.startswith("Unggahan lebih dari")


def test_english_is_a_switch_away_and_stays_chosen(site):
    admin, submission_id, _ = site
    with TestClient(admin.app) as client:
        csrf = log_in(client, "ade")
        switched = client.post("/language", data={"csrf": csrf, "language": "en", "next": f"/review/{submission_id}"},
                               follow_redirects=False)
        assert switched.status_code == 303 and switched.headers["location"] == f"/review/{submission_id}"
        page = client.get(f"/review/{submission_id}").text
        assert '<html lang="en">' in page and "Fields to check" in page and "Verify and lock" in page
        assert "Review queue" in page and "Log out" in page and "Isian yang perlu diperiksa" not in page
        assert ">Bahasa Indonesia</button>" in page  # the way back, in the nav
        assert "Password" in client.get("/account/password").text  # a page first written in Indonesian, in English
        users = client.get("/admin/users").text
        assert "Users" in users and "last log-in" in users and "Reset password" in users
        client.post("/language", data={"csrf": csrf, "language": "id", "next": "/queue"})
        assert "Antrean pemeriksaan" in client.get("/queue").text


def test_fields_and_rules_are_named_as_the_form_prints_them(site):
    admin, submission_id, _ = site
    page = admin.get(f"/review/{submission_id}").text
    # A flagged field: its label from the template, its id in small print for the reviewer.
    assert ('4. Jumlah Pengguna Hak Pilih (B.1 + B.2 + B.3), laki-laki (L) <code class="field-id">pengguna_total_l</code>'
            in page)
    assert "A. Jumlah seluruh suara sah = Jumlah suara sah (1) + Jumlah suara sah (2) + Jumlah suara sah (3)" in page
    preview = admin.get(f"/submissions/{submission_id}").text  # the failed rule on the operator's page too
    assert "A. Jumlah seluruh suara sah = Jumlah suara sah (1)" in preview


def test_times_are_in_wita_when_formc_serve_is_started_with_asia_makassar(tmp_path):
    """`formc serve --timezone Asia/Makassar`: the admin's last log-in, stored in UTC, shows 8 hours later as WITA."""
    url = default_url(tmp_path / "results.db")
    app = create_app(url, tmp_path / "store", secret="s")
    app.state.reviews.add_user("ade", "admin", hash_password(PASSWORD))
    app.state.store.close()
    port = free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "serve", "--db", url, "--store", str(tmp_path / "store"),
                               "--port", str(port), "--secret", "s", "--timezone", "Asia/Makassar"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        deadline = time.time() + 60
        while True:
            try:
                login = browser.open(f"{base}/login").read().decode()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "formc serve did not start"
                time.sleep(0.2)
        form = urllib.parse.urlencode({"name": "ade", "password": PASSWORD, "csrf": csrf_of(login), "next": "/admin/users"})
        users = browser.open(f"{base}/login", data=form.encode()).read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
    with ResultStore(url) as store:
        last_login = next(a.last_login for a in Reviews(store).accounts() if a.name == "ade")
    shown = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d) (WI\w+)", visible(users))
    assert shown is not None and shown.group(2) == "WITA"
    assert shown.group(1) == f"{last_login + timedelta(hours=8):%Y-%m-%d %H:%M}"

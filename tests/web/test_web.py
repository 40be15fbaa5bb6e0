"""The review web app through Starlette's TestClient: a real SQLite database, photo store and reader.

One module-wide app: the operator uploads the slip sample (samples/kwk-gubernur-3/tps-0002, read
for real: `review`) once; the tests that change a submission work on copies of its result saved
under other photo keys, so they do not depend on each other's order.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from ocr.db.store import default_url
from ocr.record import SubmissionResult, TallyCount
from ocr.review.accounts import hash_password
from ocr.review.dashboard import dashboard
from ocr.review.workflow import Reviews
from ocr.web.app import create_app
from ocr.web.routes_upload import MAX_PHOTOS, MAX_UPLOAD_BYTES
from tests.web.conftest import PASSWORD, Clients, csrf_of, log_in

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "kwk-gubernur-3"
USERS = {"olga": "operator", "rudi": "reviewer", "rina": "reviewer", "ade": "admin"}


def upload(client: TestClient, csrf: str, name: str, folder: Path, pages: str = "page-*.jpg") -> str:
    files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(folder.glob(pages))]
    response = client.post("/upload", data={"submission": name, "csrf": csrf}, files=files, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def wait_for_submission(client: TestClient, job_url: str, timeout: float = 120) -> int:
    start = time.time()
    while time.time() - start < timeout:
        response = client.get(job_url, follow_redirects=False)
        if response.status_code == 303:
            return int(response.headers["location"].rsplit("/", 1)[1])
        assert response.status_code == 200 and "sedang dibaca" in response.text
        time.sleep(0.2)
    raise AssertionError("the upload was not read in time")


class Env(Clients):
    def __init__(self, app, tmp: Path) -> None:
        super().__init__(app, tmp)
        self.users = {name: self.reviews.credentials(name)[0] for name in USERS}

    def copy(self, name: str, uploader: str | None = None, **update) -> int:
        """A stored copy of the uploaded slip sample's result under a new photo key (and name), with `update`'s
        keys replaced; its id."""
        key = f"{len(self.reviews.store.keys()):064x}"
        self.reviews.store.save(self.slip.model_copy(update={"submission": name, "photos_key": key, **update}))
        submission_id = self.reviews.id_of(name, key)
        if uploader is not None:
            self.reviews.record_upload(submission_id, self.users[uploader], ["page-1.jpg"])
        return submission_id


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("web")
    app = create_app(default_url(tmp / "results.db"), tmp / "store", secret="test-secret")
    with TestClient(app) as lifespan:  # runs the app's start-up and shut-down
        reviews: Reviews = app.state.reviews
        for name, role in USERS.items():
            reviews.add_user(name, role, hash_password(PASSWORD))
        e = Env(app, tmp)
        client, csrf = e.client("olga")
        e.slip_id = wait_for_submission(client, upload(client, csrf, "kab-x/tps-0002", SAMPLES / "tps-0002"))
        e.slip: SubmissionResult = reviews.store.get_by_id(e.slip_id)
        yield e
        for c, _ in e.clients.values():
            c.close()
        del lifespan


# --- the operator's side -------------------------------------------------------------------------------------------

def test_upload_is_read_into_a_preview_with_failed_rules(env):
    client, _ = env.client("olga")
    assert env.slip.status == "review" and env.slip.template == "kwk-gubernur-3"
    page = client.get(f"/submissions/{env.slip_id}")
    assert page.status_code == 200
    assert "suara_sah = sum(suara_paslon_#) + sum(suara_kolom_kosong)" in page.text  # a failed rule, listed
    for n in range(3):
        image = client.get(f"/submissions/{env.slip_id}/page-{n}.jpg")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg" and image.content[:3] == b"\xff\xd8\xff"
    sha = env.slip.pages[0].sha256
    original = client.get(f"/submissions/{env.slip_id}/photos/{sha}")
    assert original.content == (SAMPLES / "tps-0002" / "page-1.jpg").read_bytes()
    assert (env.tmp / "store" / sha[:2] / sha).is_file()  # content-addressed


def test_the_same_photos_again_are_not_read_twice(env):
    client, csrf = env.client("olga")
    assert upload(client, csrf, "kab-x/tps-0002", SAMPLES / "tps-0002") == f"/submissions/{env.slip_id}"
    # Under another TPS's name: a conflict (tests/web/test_intake.py), neither read nor kept for it.


def test_a_batch_twin_says_whose_photos_it_has_before_anyone_verifies_it(env):
    from ocr.run.twins import Twins

    twin = Twins([(env.slip.submission, env.slip.photos_key)]).check(env.slip.model_copy(update={"submission": "kab-y/tps-7"}))
    env.reviews.store.save(twin)
    twin_id = env.reviews.id_of("kab-y/tps-7", env.slip.photos_key)
    assert twin_id != env.slip_id and env.reviews.id_of(None, env.slip.photos_key) == env.slip_id
    rudi, _ = env.client("rudi")
    for page in (rudi.get(f"/submissions/{twin_id}").text, rudi.get(f"/review/{twin_id}").text):
        assert "Foto yang sama dengan kab-x/tps-0002" in page and "Tidak perlu foto ulang" not in page
    assert "Foto yang sama dengan" not in rudi.get(f"/submissions/{env.slip_id}").text


def test_a_refused_photo_gets_a_plain_message(env):
    client, csrf = env.client("olga")
    blank = io.BytesIO()
    from PIL import Image

    Image.new("L", (1200, 1600), 255).save(blank, "JPEG")  # a photo with no form on it
    response = client.post("/upload", data={"submission": "kab-x/tps-blank", "csrf": csrf},
                           files=[("photos", ("IMG_1.jpg", blank.getvalue(), "image/jpeg"))], follow_redirects=False)
    submission_id = wait_for_submission(client, response.headers["location"])
    page = client.get(f"/submissions/{submission_id}").text
    assert "Foto ulang halaman ini" in page and "halaman formulir tidak ditemukan" in page
    assert client.get(f"/submissions/{submission_id}/page-0.jpg").status_code == 200  # the refusal, drawn


def test_an_operator_sees_only_their_own_uploads(env):
    other = env.copy("kab-y/tps-0100", uploader="rudi")
    client, _ = env.client("olga")
    assert client.get(f"/submissions/{other}").status_code == 403
    assert client.get(f"/submissions/{other}/page-0.jpg").status_code == 403
    assert client.get(f"/submissions/{other}/photos/{env.slip.pages[0].sha256}").status_code == 403


# --- security ------------------------------------------------------------------------------------------------------

def _concrete(path: str, env: Env) -> str:
    values = {"sid": str(env.slip_id), "n": "0", "kind": "boxes", "field_id": "suara_sah", "sha": env.slip.pages[0].sha256,
              "job_id": "x", "name": "rina", "draft_id": "x"}
    path = path.replace("/export/{kind:str}", "/export/results.csv")
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], path)


def test_every_route_without_log_in_redirects_or_is_refused(env):
    # The public results site is open by design (tests/web/test_public.py checks that it shows verified numbers only);
    # so is /api/sync, whose credential is the bundle's signature (tests/web/test_sync.py refuses unsigned ones).
    routes = [r for r in env.app.routes if isinstance(r, Route) and r.path not in ("/login", "/api/sync")
              and not r.path.startswith("/publik")]
    assert len(routes) >= 15
    with TestClient(env.app) as anonymous:
        for route in routes:
            for method in route.methods - {"HEAD"}:
                response = anonymous.request(method, _concrete(route.path, env), follow_redirects=False)
                assert response.status_code in (303, 401, 403), (method, route.path, response.status_code)
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/login"), route.path


def test_a_form_without_its_csrf_token_is_refused(env):
    client, _ = env.client("ade")
    target = env.copy("kab-x/tps-csrf")
    # /api/sync reads no session (the bundle's signature is its credential): a forged form can only send a signed bundle.
    posts = [r for r in env.app.routes if isinstance(r, Route) and "POST" in r.methods and r.path != "/api/sync"]
    assert {r.path for r in posts} >= {"/login", "/logout", "/upload", "/review/{sid:int}", "/review/{sid:int}/verify",
                                       "/review/{sid:int}/reopen"}
    for route in posts:
        path = _concrete(route.path, env).replace(str(env.slip_id), str(target))
        for data in ({}, {"csrf": "forged"}):
            response = client.post(path, data={**data, "reason": "x", "v.suara_sah": "1"}, follow_redirects=False)
            assert response.status_code == 403, (route.path, data)
    assert env.reviews.view(target).corrections == []  # nothing changed
    assert client.get("/queue").status_code == 200  # still logged in: logout was refused too


@pytest.mark.parametrize("path", [
    "/submissions/{sid}/photos/..%2F..%2Fsecret.key",
    "/submissions/{sid}/photos/%2e%2e%2f%2e%2e%2fresults.db",
    "/submissions/{sid}/photos/../../secret.key",
    "/submissions/{sid}/photos/" + "0" * 64,
    "/submissions/{sid}/boxes/..%2F..%2F..%2Fsecret.key.jpg",
    "/submissions/{sid}/region/..%2Fsuara_sah.jpg",
    "/submissions/{sid}/page-..%2F..%2Fsecret.key.jpg",
    "/static/..%2F..%2F..%2Fsecret.key",
    "/static/../app.py",
])
def test_path_traversal_in_photo_urls_fails(env, path):
    client, _ = env.client("ade")
    (env.tmp / "store" / "secret.key").write_text("do-not-leak")
    response = client.get(path.replace("{sid}", str(env.slip_id)), follow_redirects=False)
    assert response.status_code in (400, 403, 404), response.status_code
    assert b"do-not-leak" not in response.content and b"import" not in response.content


def test_a_200_mb_upload_is_refused_before_it_is_read(env):
    client, csrf = env.client("olga")
    body = bytes(200 * 2**20)
    start = time.perf_counter()
    response = client.post("/upload", content=body, headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "MB" in response.text
    assert time.perf_counter() - start < 10

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted on the stream
        yield b"--x\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"big.jpg\"\r\n\r\n\xff\xd8\xff"
        for _ in range(200):
            yield bytes(2**20)

    response = client.post("/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    assert MAX_UPLOAD_BYTES < 200 * 2**20


def test_a_non_image_upload_is_refused_by_content(env):
    client, csrf = env.client("olga")
    response = client.post("/upload", data={"submission": "kab-x/tps-9", "csrf": csrf},
                           files=[("photos", ("page-1.jpg", b"%PDF-1.4 not a photo at all", "image/jpeg"))])
    assert response.status_code == 415 and "bukan foto" in response.text
    too_many = [("photos", (f"p{i}.jpg", b"\xff\xd8\xff", "image/jpeg")) for i in range(MAX_PHOTOS + 1)]
    response = client.post("/upload", data={"submission": "kab-x/tps-9", "csrf": csrf}, files=too_many)
    assert response.status_code == 400 and f"Paling banyak {MAX_PHOTOS} foto" in response.text
    flood = [("photos", (f"p{i}.jpg", b"\xff\xd8\xff", "image/jpeg")) for i in range(50)]
    response = client.post("/upload", data={"submission": "kab-x/tps-9", "csrf": csrf}, files=flood)
    assert response.status_code == 400 and "Terlalu banyak berkas" in response.text  # the parser's limit, in Indonesian


def test_an_operator_cannot_reach_review_routes(env):
    client, csrf = env.client("olga")
    for path in ["/queue", f"/review/{env.slip_id}", "/dashboard", "/export/results.csv", "/export/results.jsonl",
                 "/export/crops.zip", f"/submissions/{env.slip_id}/boxes/suara_sah.jpg", "/audit"]:
        assert client.get(path, follow_redirects=False).status_code == 403, path
    for path in [f"/review/{env.slip_id}", f"/review/{env.slip_id}/verify", f"/review/{env.slip_id}/reopen"]:
        response = client.post(path, data={"csrf": csrf, "reason": "x", "v.suara_sah": "171"}, follow_redirects=False)
        assert response.status_code == 403, path
    assert env.reviews.view(env.slip_id).state == "open"


def test_log_in_cookie_and_password_storage(env):
    with TestClient(env.app) as client:
        page = client.get("/login")
        wrong = client.post("/login", data={"name": "rudi", "password": "guess", "csrf": csrf_of(page.text)})
        assert wrong.status_code == 401
        response = client.post("/login", data={"name": "rudi", "password": PASSWORD, "csrf": csrf_of(page.text),
                                               "next": "https://evil.example/"}, follow_redirects=False)
        assert response.headers["location"] == "/"  # no open redirect
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert "content-security-policy" in response.headers
    _, stored = env.reviews.credentials("rudi")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert any(e["action"] == "login_failed" and e["detail"]["name"] == "rudi" for e in env.reviews.audit())


def test_passwords_are_checked_off_the_event_loop(env, monkeypatch):
    """argon2 costs tens of ms of CPU by design: checked on the event loop, a few wrong-password loops stall every
    other user's page. The check runs in a worker thread (no running event loop there)."""
    import asyncio

    import ocr.review.accounts as accounts

    on_loop, real = [], accounts.authenticate

    def spy(*args):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(*args)

    monkeypatch.setattr(accounts, "authenticate", spy)
    with TestClient(env.app) as client:
        page = client.get("/login")
        client.post("/login", data={"name": "rudi", "password": "guess", "csrf": csrf_of(page.text)})
    assert on_loop == [False]


def test_a_failed_save_tells_the_operator_without_the_databases_words(tmp_path, monkeypatch):
    """A read that cannot be saved (a read-only database, a full disk) says so plainly: the failed statement, with
    its SQL and values, goes to the server's log, never onto an operator's page."""
    from sqlalchemy.exc import OperationalError

    def read_only(result):
        raise OperationalError("INSERT INTO submissions (submission, photos_key) VALUES (?, ?)", ("kab-q/tps-0001", "ab"),
                               Exception("attempt to write a readonly database"))

    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    app.state.reviews.add_user("olga", "operator", hash_password(PASSWORD))
    monkeypatch.setattr(app.state.reader.store, "save", read_only)
    with TestClient(app) as client:
        job_url = upload(client, log_in(client, "olga"), "kab-q/tps-0001", SAMPLES / "tps-0001")
        deadline = time.time() + 120
        while "sedang dibaca" in (page := client.get(job_url).text) and time.time() < deadline:
            time.sleep(0.2)
    assert "Server gagal menyimpan hasil" in page and "did not finish" in page
    assert "INSERT" not in page and "readonly" not in page and "OperationalError" not in page


def test_a_database_that_cannot_be_written_gives_a_plain_503(tmp_path, monkeypatch):
    """A failed log-in is counted and logged: on a read-only (or full, or gone) database the person sees a plain page saying
    so, not a bare 500 or the statement that failed."""
    from sqlalchemy.exc import OperationalError

    def read_only(*args, **kwargs):
        raise OperationalError("INSERT INTO audit_log (user_id, action) VALUES (?, ?)", (None, "login_failed"),
                               Exception("attempt to write a readonly database"))

    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    monkeypatch.setattr(app.state.reviews, "count_failure", read_only)
    with TestClient(app) as client:
        page = client.get("/login")
        response = client.post("/login", data={"name": "rudi", "password": "guess", "csrf": csrf_of(page.text)})
    assert response.status_code == 503 and "tidak dapat digunakan saat ini" in response.text
    assert "INSERT" not in response.text and "readonly" not in response.text


# --- review --------------------------------------------------------------------------------------------------------

def test_review_page_shows_flagged_fields_with_crops_and_rules(env):
    client, _ = env.client("rudi")
    queue = client.get("/queue").text
    assert f'href="/review/{env.slip_id}"' in queue
    page = client.get(f"/review/{env.slip_id}").text
    assert 'id="v-suara_sah"' in page and 'id="v-pengguna_total_l"' in page
    rules = json.loads(re.search(r'id="rules-data">(.*?)</script>', page, re.S).group(1))
    sah = next(r for r in rules if r["text"].startswith("suara_sah = sum("))
    assert sah["l"] == {"f": "suara_sah"} and sah["r"]["l"]["s"] == ["suara_paslon_1", "suara_paslon_2", "suara_paslon_3"]
    for kind in ("boxes", "region"):
        image = client.get(f"/submissions/{env.slip_id}/{kind}/suara_sah.jpg")
        assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"


def test_review_page_shows_the_tally_beside_row_sums(env):
    fields = {f: read.model_copy(update={"tally": None}) for f, read in env.slip.fields.items()}  # tallies set here only
    fields["suara_paslon_1_baris_1"] = fields["suara_paslon_1_baris_1"].model_copy(update={
        "status": "review", "value": 52, "tally": TallyCount(status="counted", count=55, p=0.8, cells=["5"] * 11)})
    fields["suara_paslon_2_baris_1"] = fields["suara_paslon_2_baris_1"].model_copy(update={
        "status": "ok", "value": 0, "tally": TallyCount(status="struck", count=0, p=1.0, cells=["struck"] * 12)})
    fields["suara_paslon_3_baris_1"] = fields["suara_paslon_3_baris_1"].model_copy(update={
        "tally": TallyCount(status="none", count=None, p=0.0, cells=["0"] * 12)})  # no marks: no evidence to show
    target = env.copy("kab-t/tps-tally", fields=fields)
    client, _ = env.client("rudi")
    page = client.get(f"/review/{target}").text
    flagged = page.split('id="field-suara_paslon_1_baris_1"')[1].split('class="field ')[0]
    assert '· <span class="tally fail">turus: 55 garis</span></p>' in flagged  # in the reader's line, against its 52
    assert ('Jumlah suara sah (2), baris 1 <code class="field-id">suara_paslon_2_baris_1</code> '
            '<span class="tally good">turus: baris dicoret</span>') in page
    assert page.count('class="tally ') == 2


def test_queue_puts_review_first_by_risk(env):
    ok = env.slip.model_copy(update={"status": "ok", "fields": {f: r.model_copy(update={"status": "ok"})
                                                                for f, r in env.slip.fields.items()}})
    env.reviews.store.save(ok.model_copy(update={"submission": "kab-z/tps-ok", "photos_key": "f" * 64}))
    order = [item.submission for item in env.reviews.queue(1000)]
    assert order.index("kab-x/tps-0002") < order.index("kab-z/tps-ok")
    assert all(item.status == "review" for item in env.reviews.queue(1000)[:order.index("kab-z/tps-ok")])


def test_the_queue_pages_through_every_open_submission(env, monkeypatch):
    """The queue says how many there are and pages through them all, none twice: it no longer stops at 100."""
    import ocr.web.routes_review as routes_review

    monkeypatch.setattr(routes_review, "QUEUE_PAGE", 2)
    for n in range(5):
        env.copy(f"kab-p/tps-{n:04d}", uploader="olga")
    client, _ = env.client("rudi")
    total = env.reviews.queue_size()
    assert total >= 5
    seen = []
    for page in range(1, -(-total // 2) + 1):  # ceil(total / 2) pages
        html = client.get(f"/queue?page={page}").text
        seen += re.findall(r'<a href="/review/(\d+)">', html)
        assert f"dari {total}." in html and ('?page=' + str(page + 1) in html) == (page * 2 < total)
    assert len(seen) == len(set(seen)) == total
    assert [str(item.id) for item in env.reviews.queue(1000)] == seen  # the same order as one long page


def test_correct_verify_lock_reopen_with_an_audit_trail(env):
    target = env.copy("kab-x/tps-audit", uploader="olga")
    client, csrf = env.client("rudi")
    fields = {"v.pengguna_total_l": "79", "v.suara_sah": "171"}
    response = client.post(f"/review/{target}", data={**fields, "csrf": csrf, "reason": "slip on the form: 71+71+29"},
                           follow_redirects=False)
    assert response.status_code == 303
    view = env.reviews.view(target)
    assert view.values["suara_sah"] == 171 and view.values["pengguna_total_l"] == 79
    assert view.result.fields["suara_sah"].value == 181  # the machine's read stays as read
    assert not [r for r, hard in view.failed_rules() if hard]
    bad = client.post(f"/review/{target}", data={"v.suara_sah": "17x", "csrf": csrf, "reason": "r"})
    assert bad.status_code == 422 and "bukan jumlah suara" in bad.text

    assert client.post(f"/review/{target}/verify", data={"csrf": csrf}).status_code == 403  # who corrected it
    rina, rina_csrf = env.client("rina")
    assert rina.post(f"/review/{target}/verify", data={"csrf": rina_csrf}, follow_redirects=False).status_code == 303
    assert env.reviews.view(target).state == "verified"
    locked = client.post(f"/review/{target}", data={"v.suara_sah": "170", "csrf": csrf, "reason": "again"})
    assert locked.status_code == 409 and env.reviews.view(target).values["suara_sah"] == 171
    assert client.post(f"/review/{target}/reopen", data={"csrf": csrf, "reason": ""}).status_code == 409
    assert client.post(f"/review/{target}/reopen", data={"csrf": csrf, "reason": "recount ordered"},
                       follow_redirects=False).status_code == 303
    assert env.reviews.view(target).state == "open"

    log = [e for e in env.reviews.audit(submission_id=target)][::-1]
    assert [(e["action"], e["user"]) for e in log] == [("upload", "olga"), ("correct", "rudi"), ("correct", "rudi"),
                                                        ("verify_refused", "rudi"), ("verify", "rina"), ("reopen", "rudi")]
    changes = {e["detail"]["field"]: (e["detail"]["old"], e["detail"]["new"]) for e in log if e["action"] == "correct"}
    read_l = view.result.fields["pengguna_total_l"].value  # the machine's read (a misread of the 9 in "-79")
    assert changes == {"pengguna_total_l": (read_l, 79), "suara_sah": (181, 171)} and read_l != 79
    assert all(e["at"] is not None for e in log)
    assert log[1]["detail"]["reason"] == "slip on the form: 71+71+29" and log[5]["detail"]["reason"] == "recount ordered"


def test_verify_refuses_while_a_hard_rule_fails(env):
    target = env.copy("kab-x/tps-inconsistent", uploader="olga")
    client, csrf = env.client("rudi")
    response = client.post(f"/review/{target}/verify", data={"csrf": csrf})
    assert response.status_code == 409 and "aturan tidak terpenuhi" in response.text
    assert env.reviews.view(target).state == "open"


def test_four_eyes_the_uploader_cannot_verify(env):
    target = env.copy("kab-x/tps-four-eyes", uploader="rudi")
    rudi, rudi_csrf = env.client("rudi")
    rudi.post(f"/review/{target}", data={"v.pengguna_total_l": "79", "v.suara_sah": "171", "csrf": rudi_csrf,
                                         "reason": "checked"})
    assert "pemeriksa lain harus memverifikasinya" in rudi.get(f"/review/{target}").text
    response = rudi.post(f"/review/{target}/verify", data={"csrf": rudi_csrf})
    assert response.status_code == 403 and env.reviews.view(target).state == "open"
    assert [e["user"] for e in env.reviews.audit(submission_id=target) if e["action"] == "verify_refused"] == ["rudi"]
    rina, rina_csrf = env.client("rina")
    assert rina.post(f"/review/{target}/verify", data={"csrf": rina_csrf}, follow_redirects=False).status_code == 303
    view = env.reviews.view(target)
    assert view.state == "verified" and view.verified_by == "rina"


def test_four_eyes_whoever_corrected_or_uploaded_again_cannot_verify(env):
    """Four eyes is a rule of the data: the verifier neither uploaded these photos (first or again) nor corrected
    the submission; anyone else may."""
    corrected = env.copy("kab-x/tps-corrected", uploader="olga")
    rina, rina_csrf = env.client("rina")
    rina.post(f"/review/{corrected}", data={"v.pengguna_total_l": "79", "v.suara_sah": "171", "csrf": rina_csrf,
                                            "reason": "checked"})
    page = rina.get(f"/review/{corrected}").text
    assert "Anda mengoreksi kiriman ini: pemeriksa lain harus memverifikasinya" in page and 'id="verify"' not in page
    refused = rina.post(f"/review/{corrected}/verify", data={"csrf": rina_csrf})
    assert refused.status_code == 403 and env.reviews.view(corrected).state == "open"

    uploaded_again = env.copy("kab-x/tps-uploaded-again", uploader="olga")
    env.reviews.record_upload(uploaded_again, env.users["rina"], ["page-1.jpg"])  # the same photos, by a reviewer
    env.reviews.correct(uploaded_again, env.users["rudi"], {"pengguna_total_l": 79, "suara_sah": 171}, "checked")
    assert rina.post(f"/review/{uploaded_again}/verify", data={"csrf": rina_csrf}).status_code == 403
    ade, ade_csrf = env.client("ade")
    for target in (corrected, uploaded_again):
        assert ade.post(f"/review/{target}/verify", data={"csrf": ade_csrf}, follow_redirects=False).status_code == 303
        assert env.reviews.view(target).verified_by == "ade"


def test_a_csv_export_never_hands_a_spreadsheet_a_formula(env):
    """A TPS named like a formula is written as text: a spreadsheet shows it, it does not run it."""
    target = env.copy("=1+2/@SUM(A1)", uploader="olga")
    env.reviews.correct(target, env.users["rudi"], {"pengguna_total_l": 79, "suara_sah": 171}, "r")
    client, csrf = env.client("rina")
    assert client.post(f"/review/{target}/verify", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    rows = [r for r in csv.DictReader(io.StringIO(client.get("/export/results.csv").text)) if "SUM" in r["submission"]]
    assert rows and {(r["submission"], r["region"]) for r in rows} == {("'=1+2/@SUM(A1)", "'=1+2")}
    assert all(r["value"] == "" or r["value"].isdigit() for r in rows)  # numbers stay numbers


def test_exports_hold_the_verified_values_and_labelled_crops(env):
    target = env.copy("kab-e/tps-export", uploader="olga")
    rudi, rudi_csrf = env.client("rudi")
    rudi.post(f"/review/{target}", data={"v.pengguna_total_l": "79", "v.suara_sah": "171", "csrf": rudi_csrf, "reason": "r"})
    client, csrf = env.client("rina")
    assert client.post(f"/review/{target}/verify", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    rows = list(csv.DictReader(io.StringIO(client.get("/export/results.csv").text)))
    mine = {r["field"]: r for r in rows if r["submission"] == "kab-e/tps-export"}
    assert mine["suara_sah"]["value"] == "171" and mine["suara_sah"]["machine_value"] == "181"
    assert mine["suara_sah"]["corrected"] == "1" and mine["suara_paslon_1"]["corrected"] == "0"
    assert mine["suara_sah"]["region"] == "kab-e" and mine["suara_sah"]["verified_by"] == "rina"
    assert len(mine) == len(env.slip.fields)
    lines = [json.loads(line) for line in client.get("/export/results.jsonl").text.splitlines()]
    record = next(r for r in lines if r["submission"] == "kab-e/tps-export")
    assert record["values"]["suara_sah"] == 171 and {c["field"] for c in record["corrections"]} == {"pengguna_total_l",
                                                                                                       "suara_sah"}
    assert all(r["verified_by"] for r in lines)

    # The crops come from the uploaded submission's photos: correct it too (the copies share no photo key).
    client.post(f"/review/{env.slip_id}", data={"v.suara_sah": "171", "csrf": csrf, "reason": "slip"})
    env.reviews.store.save(env.slip.model_copy(update={"submission": "kab-e/tps-twin"}))  # the same photos, renamed
    twin_id = env.reviews.id_of("kab-e/tps-twin", env.slip.photos_key)
    client.post(f"/review/{twin_id}", data={"v.suara_sah": "170", "csrf": csrf, "reason": "twin"})
    archive = zipfile.ZipFile(io.BytesIO(client.get("/export/crops.zip").content))
    assert len(archive.namelist()) == len(set(archive.namelist()))  # the twin's boxes (the slip's photos) once
    labels = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    sah = [r for r in labels if r["field"] == "suara_sah" and r["submission"] == "kab-x/tps-0002"]
    assert [r["label"] for r in sah][-3:] == ["1", "7", "1"]
    assert archive.read(sah[-1]["file"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert {e["detail"]["kind"] for e in env.reviews.audit() if e["action"] == "export"} >= {"results.csv", "crops.zip"}


def test_dashboard_counts_and_votes(env):
    client, _ = env.client("ade")
    page = client.get("/dashboard")
    assert page.status_code == 200
    d = dashboard(env.reviews.store)
    assert d["total"] == len(env.reviews.store.keys())
    assert d["by_region"]["kab-x"]["review"] >= 1 and sum(n for _, n in d["per_hour"]) == d["total"]
    assert dict(d["reasons"])["rule_failed"] >= 1
    verified = d["votes"]["kab-e"]
    assert verified["verified_count"] == 1 and verified["verified"]["suara_paslon_1"] == env.slip.fields["suara_paslon_1"].value
    assert "paslon_1" in page.text and "aturan formulir tidak terpenuhi" in page.text
    assert client.get("/audit").status_code == 200

"""What an upload becomes (issue 19): a TPS missing a page is told which photo to take and completed by a later upload
under its name; a `formc batch --store` result is reviewable with its images; the same photos under another TPS name
are a conflict that grants no access. TestClient on a real SQLite database, photo store and reader, the bundled samples.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ocr.db.store import default_url
from tests.web.conftest import Clients, app_with_users
from tests.web.test_web import upload, wait_for_submission

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
USERS = {"olga": "operator", "oki": "operator", "rudi": "reviewer"}


class Env(Clients):
    def post(self, name: str, submission: str, photos: list[Path]):
        client, csrf = self.client(name)
        files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        return client.post("/upload", data={"submission": submission, "csrf": csrf}, files=files, follow_redirects=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[Env]:
    with app_with_users(tmp_path_factory.mktemp("intake"), USERS, Env) as e:
        yield e


def test_a_missing_page_is_flagged_then_completed_by_a_later_upload_and_verified(env):
    tps, name = SAMPLES / "kwk-bupati-tunggal" / "tps-0001", "kab-b/tps-0001"
    olga, csrf = env.client("olga")
    first = wait_for_submission(olga, upload(olga, csrf, name, tps, "page-1.jpg"))
    result = env.reviews.view(first).result
    assert result.status == "incomplete"
    assert [str(r) for r in result.reasons] == ["missing_page: 2", "missing_page: 3"]
    page = olga.get(f"/submissions/{first}").text
    assert "Foto halaman 2, 3 formulir ini, lalu unggah dengan nama TPS yang sama, kab-b/tps-0001" in page
    assert "Tidak perlu foto ulang" not in page  # not "the photos are fine"
    # Another operator may not complete it (the read would show them olga's photo).
    refused = env.post("oki", name, [tps / "page-2.jpg", tps / "page-3.jpg"])
    assert refused.status_code == 409 and "diunggah oleh operator lain" in refused.text
    # The missing pages under the same name: the same submission, read again with page 1.
    completed = wait_for_submission(olga, upload(olga, csrf, name, tps, "page-[23].jpg"))
    assert completed == first
    view = env.reviews.view(first)
    assert view.result.status == "ok" and [p.page for p in view.result.pages] == [1, 2, 3]
    assert env.reviews.latest(name).id == first and view.uploaded_by.name == "olga"
    rudi, rudi_csrf = env.client("rudi")
    assert rudi.post(f"/review/{first}/verify", data={"csrf": rudi_csrf}, follow_redirects=False).status_code == 303
    assert env.reviews.view(first).state == "verified"


def _jpeg(response) -> bool:
    return response.status_code == 200 and response.content[:3] == b"\xff\xd8\xff" and len(response.content) > 1000


def test_a_batch_result_with_store_is_reviewable_with_its_images(env, tmp_path):
    tps = tmp_path / "inbox" / "kab-p" / "tps-0001"
    shutil.copytree(SAMPLES / "ppwp-2024" / "tps-0001", tps, ignore=shutil.ignore_patterns("truth.json"))
    ran = CliRunner().invoke(main, ["batch", str(tmp_path / "inbox"), "--out", str(tmp_path / "r.jsonl"), "--workers",
                                    "1", "--db", default_url(env.tmp / "results.db"), "--store", str(env.tmp / "store")])
    assert ran.exit_code == 0, ran.output
    batch_id = env.reviews.latest("kab-p/tps-0001").id
    result = env.reviews.view(batch_id).result
    assert all((env.tmp / "store" / p.sha256[:2] / p.sha256).is_file() for p in result.pages)
    assert not (env.tmp / "store" / "derived" / result.photos_key).exists()  # the batch drew nothing
    rudi, _ = env.client("rudi")
    field = next(iter(result.fields))
    assert rudi.get(f"/review/{batch_id}").status_code == 200
    for url in [f"/submissions/{batch_id}/page-{n}.jpg" for n in range(3)] + [
            f"/submissions/{batch_id}/boxes/{field}.jpg", f"/submissions/{batch_id}/region/{field}.jpg"]:
        assert _jpeg(rudi.get(url)), url  # drawn on demand from the stored photos
    # The same photos uploaded again under the batch's name land on that submission, images and all.
    olga, csrf = env.client("olga")
    assert upload(olga, csrf, "kab-p/tps-0001", tps) == f"/submissions/{batch_id}"
    assert olga.get(f"/submissions/{batch_id}").status_code == 200 and _jpeg(olga.get(f"/submissions/{batch_id}/page-0.jpg"))


def test_the_same_photos_under_another_name_are_a_conflict_that_grants_no_access(env):
    tps = SAMPLES / "kwk-gubernur-3" / "tps-0001"
    olga, csrf = env.client("olga")
    first = wait_for_submission(olga, upload(olga, csrf, "kab-c/tps-0001", tps))
    photos = sorted(tps.glob("page-*.jpg"))
    for who, sent in (("oki", photos), ("oki", photos[1:2]), ("olga", photos)):  # one of the photos is enough
        response = env.post(who, "kab-c/tps-0009", sent)
        assert response.status_code == 409, who
        assert "Foto-foto ini sudah pernah diunggah untuk TPS kab-c/tps-0001" in response.text
    assert env.reviews.latest("kab-c/tps-0009") is None  # neither read nor merged
    oki, _ = env.client("oki")
    assert oki.get(f"/submissions/{first}").status_code == 403
    assert oki.get(f"/submissions/{first}/page-0.jpg").status_code == 403
    conflicts = [e for e in env.reviews.audit(50, first) if e["action"] == "upload_conflict"]
    assert [e["user"] for e in conflicts] == ["olga", "oki", "oki"]
    assert conflicts[0]["detail"]["submission"] == "kab-c/tps-0009"

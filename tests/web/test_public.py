"""The public results site /publik (issue 20): no log-in, verified results only. A reader drills down from the country
to a TPS and sees its verified numbers and page image; no page shows a user name, a correction's reason or a machine
value; an unverified TPS's image is refused; past the rate limit the answer is 429. TestClient on a real SQLite
database."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import insert
from starlette.testclient import TestClient

from ocr.db.store import default_url
from ocr.db.tables import CorrectionRow, ReviewRow
from ocr.reader.reasons import FindingCode
from ocr.record import PageResult, Reason
from ocr.review.accounts import hash_password
from ocr.web.app import create_app
from ocr.web.public_limits import TokenBuckets, TtlCache
from tests.review.test_recap import DESA, result
from tests.web.conftest import PASSWORD

REVIEWER_ONLY = ("rina", "angka paslon 2 terbaca salah", "613", "777", "555", "rule_failed", "suara_sah ==")


def _app(tmp_path):
    """Kabupaten Bandung, desa Cileunyi Kulon: TPS 1 verified (paslon 2 corrected from 613 to 10), TPS 2 read and
    flagged, both with a failed rule; TPS 1 of the next desa read only. Three TPS listed for Cileunyi Kulon."""
    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    store, reviews, photos = app.state.store, app.state.reviews, app.state.photos
    rina = reviews.add_user("rina", "reviewer", hash_password(PASSWORD))
    page = PageResult(source="c1.jpg", sha256="a" * 64, page=1, status="read")
    verified = result(1, DESA[0], 1, "ok", {"suara_paslon_1": 41, "suara_paslon_2": 613, "suara_sah": 51})
    reasons = [Reason(code=FindingCode.RULE_FAILED, detail="suara_sah == suara_paslon_1 + suara_paslon_2")]
    store.save(verified.model_copy(update={"pages": [page], "reasons": reasons}))
    flagged = result(2, DESA[0], 2, "review", {"suara_paslon_1": 777, "suara_paslon_2": 555, "suara_sah": 20})
    store.save(flagged.model_copy(update={"pages": [page], "reasons": reasons}))
    store.save(result(3, DESA[1], 1, "review", {"suara_paslon_1": 777, "suara_sah": 777}))
    ids = [reviews.id_of(r.submission, r.photos_key) for r in (verified, flagged)]
    with store.engine.begin() as connection:
        connection.execute(insert(CorrectionRow).values(submission_id=ids[0], field_id="suara_paslon_2", old_value=613,
                                                        new_value=10, reason="angka paslon 2 terbaca salah",
                                                        user_id=rina.id))
        connection.execute(insert(ReviewRow).values(submission_id=ids[0], state="verified", verified_by=rina.id,
                                                    verified_at=datetime(2026, 2, 15, 3, 4, tzinfo=timezone.utc)))
    app.state.regions.load_tps_counts({DESA[0]: 3})
    for sid, r in zip(ids, (verified, flagged), strict=True):  # as if drawn when read: the photos are not stored
        path = photos.derived(r.photos_key, "page-0.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 page of submission %d" % sid)
    return app, ids


def _public(client: TestClient, url: str) -> str:
    """The page at `url`: answered without log-in, cacheable by anyone, with no cookie and no reviewer-only data."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["cache-control"].startswith("public") and "set-cookie" not in response.headers
    for secret in REVIEWER_ONLY:
        assert secret not in response.text, (url, secret)
    return response.text


def _link(html: str, name: str) -> str:
    return re.search(rf'<a href="([^"]+)">{name}</a>', html).group(1)


def test_a_reader_drills_down_to_a_verified_tps_and_sees_verified_numbers_only(tmp_path):
    app, (verified, flagged) = _app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/publik", follow_redirects=False).headers["location"] == "/publik/bupati"
        country = _public(client, "/publik/bupati")
        assert "Hasil pemilihan" in country and "diperbarui terakhir" in country
        assert '<meta http-equiv="refresh" content="60">' in country and "<script" not in country
        province = _public(client, _link(country, "Jawa Barat"))
        kabupaten = _public(client, _link(province, "Kabupaten Bandung"))
        assert "41" in kabupaten and "80.39%" in kabupaten  # paslon 1: 41 of 51 verified paslon votes
        kecamatan = _public(client, _link(kabupaten, "Cileunyi"))
        desa = _public(client, _link(kecamatan, "Cileunyi Kulon"))
        assert "1 / 3" in desa and "TPS 002" in desa and "/tps/2" not in desa  # verified / expected; 2 not linked
        tps = _public(client, _link(desa, "TPS 001"))
        assert "<td>41</td>" in tps and "<td>10</td>" in tps and "19.61" in tps
        image = _link(tps, '<img class="page" src="[^"]+" alt="[^"]+">')
        assert image == f"/publik/tps/{verified}/page-0.jpg"
        shown = client.get(image)
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        assert shown.headers["cache-control"].startswith("public")
        assert client.get(f"/publik/tps/{flagged}/page-0.jpg").status_code == 404  # not verified: refused
        assert client.get("/publik/bupati/3204052001/tps/2").status_code == 404
        for missing in ("/publik/pilkades", "/publik/bupati/3299", "/publik/bupati/32.04", "/publik/bupati/3204052099"):
            assert client.get(missing).status_code == 404, missing


def test_past_the_rate_limit_a_client_gets_429_in_indonesian(tmp_path):
    app, _ = _app(tmp_path)
    app.state.public_rate = TokenBuckets(rate=0.01, burst=2)
    with TestClient(app) as client:
        assert [client.get("/publik/bupati").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/publik/bupati/32")
        assert refused.status_code == 429 and "Terlalu banyak" in refused.text
        assert int(refused.headers["retry-after"]) > 0 and refused.headers["cache-control"] == "no-store"


def test_a_cached_value_is_computed_once_while_fresh():
    cache, computed = TtlCache(60), []
    assert [cache.get("recap", lambda: computed.append(1) or len(computed)) for _ in range(3)] == [1, 1, 1]
    assert TtlCache(0).get("recap", lambda: 2) == 2


def test_last_updated_is_the_moment_the_shown_figures_were_computed(tmp_path):
    """A page's counts, totals and times are computed together and cached together: while cached, a new verification
    shows in none of them; once recomputed, in all of them, with a later 'diperbarui terakhir'."""
    app, (_, flagged) = _app(tmp_path)

    def shown(html: str) -> tuple[str, str, datetime]:
        progress = re.search(r"<strong>(\d+ / \d+)</strong>", html)[1]
        newest = re.search(r"verifikasi terbaru: ([^·<]+?)\s*·", html)[1]
        updated = re.search(r"diperbarui terakhir: (\S+ \S+)", html)[1]
        return progress, newest, datetime.strptime(updated, "%Y-%m-%d %H:%M:%S")

    with TestClient(app) as client:
        before = shown(_public(client, "/publik/bupati/3204052001"))
        assert before[:2] == ("1 / 3", "2026-02-15 10:04 WIB")
        with app.state.store.engine.begin() as connection:
            connection.execute(insert(ReviewRow).values(submission_id=flagged, state="verified",
                                                        verified_at=datetime(2026, 2, 15, 5, 0, tzinfo=timezone.utc)))
        assert shown(client.get("/publik/bupati/3204052001").text) == before  # cached: all of it as it was
        app.state.public_cache.clear()
        after = shown(client.get("/publik/bupati/3204052001").text)
        assert after[:2] == ("2 / 3", "2026-02-15 12:00 WIB") and after[2] >= before[2]

"""The recapitulation page /rekap (issue 20): a reviewer drills down from the provinces to the kelurahan/desa of a
kecamatan, in Indonesian, with the verified totals beside the machine's; an operator is refused. TestClient on a real
SQLite database."""

from __future__ import annotations

import html
import re

from sqlalchemy import insert
from starlette.testclient import TestClient

from ocr.db.store import default_url
from ocr.db.tables import ReviewRow
from ocr.review.accounts import hash_password
from ocr.review.recap import next_problem
from ocr.web.app import create_app
from tests.review.test_recap import DESA, result
from tests.web.conftest import PASSWORD, log_in


def test_a_reviewer_drills_down_the_recap_and_an_operator_is_refused(tmp_path):
    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    store, reviews = app.state.store, app.state.reviews
    reviews.add_user("rina", "reviewer", hash_password(PASSWORD))
    reviews.add_user("olga", "operator", hash_password(PASSWORD))
    store.save(result(1, DESA[0], 1, "ok", {"suara_paslon_1": 41, "suara_kolom_kosong": 7, "suara_sah": 48}))
    store.save(result(2, DESA[1], 2, "review", {"suara_paslon_1": 12, "suara_sah": 20}))
    with TestClient(app) as client:
        log_in(client, "rina")
        country = client.get("/rekap?election=bupati")
        assert country.status_code == 200
        assert "Rekapitulasi" in country.text and 'href="/rekap?election=bupati&amp;region=32">Jawa Barat</a>' in country.text
        assert "Suara sah" in country.text and "Kolom kosong" in country.text and "paslon 1" in country.text
        kecamatan = client.get("/rekap?election=bupati&region=3204")
        assert 'href="/rekap?election=bupati&amp;region=320405">Cileunyi</a>' in kecamatan.text
        desa = client.get("/rekap?election=bupati&region=32.04.05").text
        assert "Cileunyi Kulon" in desa and "Jumlah Cileunyi" in desa and "region=3204052001" not in desa  # no level below
        assert "<td>53</td>" in desa  # paslon 1 by machine: 41 + 12
        assert client.get("/rekap?election=bupati&region=3204&level=provinsi").status_code == 400
        assert client.get("/rekap?election=pilkades").status_code == 400
        assert client.get("/rekap?election=bupati&region=3204999").status_code == 400
        assert client.get("/rekap?election=bupati&region=3299").status_code == 404
    with TestClient(app) as client:
        log_in(client, "olga")
        assert client.get("/rekap?election=bupati").status_code == 403
        assert "/rekap" not in client.get("/upload").text


def test_the_next_problem_shortcut_walks_every_unverified_tps_of_the_region(tmp_path):
    """From /rekap of Kabupaten Bandung, "TPS bermasalah berikutnya" opens the review page of each TPS read and not
    verified (in review or rejected, its newest read), by desa code and TPS number, then comes back to the recap;
    a verified TPS and one outside the region are not opened; from the country's recap, that one too."""
    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    store, reviews = app.state.store, app.state.reviews
    reviews.add_user("rina", "reviewer", hash_password(PASSWORD))
    no_rules = result(2, DESA[0], 2, "review", {}).model_copy(update={"template": None})  # verifiable as it is
    reads = [result(1, DESA[0], 1, "ok", {}), no_rules, result(3, DESA[1], 1, "rejected", {}),
             result(4, DESA[2], 3, "review", {}), result(5, DESA[2], 3, "review", {}), result(6, DESA[4], 1, "review", {})]
    store.save_many(reads)
    ids = [reviews.id_of(r.submission, r.photos_key) for r in reads]
    with store.engine.begin() as connection:
        connection.execute(insert(ReviewRow).values(submission_id=ids[0], state="verified"))
    with TestClient(app) as client:
        csrf = log_in(client, "rina")
        for code, expected in (("3204", [ids[1], ids[2], ids[4]]), ("", [ids[1], ids[2], ids[4], ids[5]])):
            page = client.get(f"/rekap?election=bupati&region={code}").text
            assert f"{len(expected)} TPS di sini sudah terbaca tetapi belum diverifikasi" in page
            link, opened = re.search(r'href="(/rekap/berikutnya[^"]+)">TPS bermasalah berikutnya</a>', page)[1], []
            while True:
                response = client.get(html.unescape(link), follow_redirects=False)
                assert response.status_code == 303
                if response.headers["location"].startswith("/rekap?"):
                    break
                review_page, walked = response.headers["location"].split("?")
                assert walked == f"rekap={code}"
                review = client.get(response.headers["location"])
                opened.append(int(review_page.rsplit("/", 1)[1]))
                link = re.search(r'id="next-problem" href="([^"]+)"', review.text)[1]
            assert opened == expected, code
            back = client.get(response.headers["location"]).text
            assert "Tidak ada lagi TPS yang perlu diperiksa di sini." in back
        assert 'id="next-problem"' not in client.get(f"/review/{ids[1]}").text  # not reached by the shortcut
        # Verified on a page the shortcut opened: on to the next TPS needing a reviewer, the verified one gone.
        assert f'action="/review/{ids[1]}/verify?rekap=3204"' in client.get(f"/review/{ids[1]}?rekap=3204").text
        verified = client.post(f"/review/{ids[1]}/verify?rekap=3204", data={"csrf": csrf}, follow_redirects=False)
        assert verified.headers["location"] == "/rekap/berikutnya?election=bupati&region=3204&after=3204052001-2"
        assert client.get(verified.headers["location"], follow_redirects=False).headers["location"] == \
            f"/review/{ids[2]}?rekap=3204"
        assert next_problem(store, "bupati", "3204").submission == ids[2]
        assert client.get("/rekap/berikutnya?election=bupati&after=32x-1").status_code == 400

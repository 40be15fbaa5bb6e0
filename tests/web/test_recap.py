"""The recapitulation page /rekap (issue 20): a reviewer drills down from the provinces to the kelurahan/desa of a
kecamatan, in Indonesian, with the verified totals beside the machine's; an operator is refused. TestClient on a real
SQLite database."""

from __future__ import annotations

from starlette.testclient import TestClient

from ocr.db.store import default_url
from ocr.review.accounts import hash_password
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

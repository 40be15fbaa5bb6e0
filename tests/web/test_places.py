"""The upload form's region pickers (issue 20): the lists come from the region registry one level at a time, an upload
with a picked kelurahan/desa, TPS number and election carries that place into the database and the exports, and a desa
the registry lacks is refused. TestClient on a real SQLite database, photo store and reader, the bundled sample.
"""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from ocr.db.store import default_url
from ocr.record import TpsIdentity
from ocr.review.accounts import hash_password
from ocr.review.exports import results_csv
from ocr.web.app import create_app
from tests.web.conftest import PASSWORD, log_in
from tests.web.test_web import wait_for_submission

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "kwk-bupati-tunggal" / "tps-0001"


def test_an_upload_with_the_pickers_carries_its_place_and_an_unknown_desa_is_refused(tmp_path):
    app = create_app(default_url(tmp_path / "results.db"), tmp_path / "store", secret="test-secret")
    with TestClient(app) as client:
        app.state.reviews.add_user("olga", "operator", hash_password(PASSWORD))
        csrf = log_in(client, "olga")
        form = client.get("/upload").text
        assert 'name="desa"' in form and "Lokasi TPS" in form and 'value="bupati">bupati' in form
        provinces = client.get("/regions").json()
        assert len(provinces) == 38 and {"code": "32", "name": "Jawa Barat"} in provinces
        assert {"code": "320405", "name": "Cileunyi"} in client.get("/regions?parent=3204").json()
        assert {"code": "3204052001", "name": "Cileunyi Kulon"} in client.get("/regions?parent=320405").json()
        assert client.get("/regions?parent=x').alert(1)//").status_code == 400
        files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(SAMPLE.glob("page-*.jpg"))]
        refused = client.post("/upload", data={"csrf": csrf, "desa": "3204059999", "tps": "7", "election": "bupati"},
                              files=files, follow_redirects=False)
        assert refused.status_code == 400 and "daftar wilayah tidak mengenal tempat ini" in refused.text
        assert app.state.reviews.latest("3204059999/TPS-007") is None
        sent = client.post("/upload", data={"csrf": csrf, "desa": "3204052001", "tps": "7", "election": "bupati"},
                           files=files, follow_redirects=False)
        assert sent.status_code == 303, sent.text
        view = app.state.reviews.view(wait_for_submission(client, sent.headers["location"]))
        assert view.result.submission == "3204052001/TPS-007"  # named by its place when no name was typed
        assert view.result.place == TpsIdentity(desa="3204052001", tps=7, election="bupati")
        assert app.state.store.get(view.result.submission, view.result.photos_key).place == view.result.place
        assert results_csv([view]).decode().splitlines()[1].startswith(
            "3204052001/TPS-007,Kabupaten Bandung,3204052001,7,bupati,")

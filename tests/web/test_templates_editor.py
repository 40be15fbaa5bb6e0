"""The template editor's routes (admin only): a markerless blank scan learned into a draft, edited as the page's script
sends it (JSON), saved with every problem shown at once or into the own templates' folder and the catalogue, tried on
a filled scan."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import yaml

from ocr.synth.camera import PROFILES, photograph, plan_photo
from ocr.synth.handwriting import load_bank
from ocr.synth.ink import WriterStyle, write_page
from ocr.templates.catalog import get_template, reload_templates
from ocr.templates.render import px_per_mm, render_page
from tests.templates.test_learn import DPI, KWK, _markers_painted_out
from tests.web.conftest import Clients, app_with_users

# Page 3 of kwk-bupati-4 (no markers: a reference-image template); its shipped ids by the learned fields' order.
VALUES = {"suara_sah": 123, "suara_tidak_sah_baris_1": 3, "suara_tidak_sah_baris_2": 2, "suara_tidak_sah": 7,
          "suara_tidak_sah_baris_3": 1, "suara_tidak_sah_baris_4": 1, "suara_tidak_sah_baris_5": 0, "suara_total": 130}


def blank_scan() -> bytes:
    """A blank page 3 of kwk-bupati-4 at 127 DPI with its markers and tag painted out: a form of the older kind."""
    return cv2.imencode(".png", _markers_painted_out(render_page(KWK, 3, DPI), KWK))[1].tobytes()


def filled_scan(seed: int = 5) -> bytes:
    """The same sheet filled in by hand (VALUES), scanned at the blank's resolution."""
    rng = np.random.default_rng(seed)
    written = write_page(_markers_painted_out(render_page(KWK, 3, DPI), KWK), KWK.page(3), VALUES, px_per_mm(DPI),
                         WriterStyle.random(rng), load_bank(None), rng)
    return cv2.imencode(".png", written.image)[1].tobytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Clients]:
    """The app whose own templates' folder is in FORMC_TEMPLATES (as `formc serve` makes it), an admin, an operator
    and a reviewer."""
    tmp = tmp_path_factory.mktemp("editor")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FORMC_TEMPLATES", str(tmp / "own"))
        (tmp / "own").mkdir()
        reload_templates()
        with app_with_users(tmp, {"ade": "admin", "olga": "operator", "rudi": "reviewer"}) as clients:
            yield clients
    reload_templates()


def learn(site: Clients, template_id: str = "kantor-c1") -> str:
    """The admin uploads the blank scan (labels not read: ids row_NN_col_M); the draft's editor URL."""
    client, csrf = site.client("ade")
    response = client.post("/admin/templat", data={"csrf": csrf, "template_id": template_id, "description": "C1 kantor",
                                                   "page": "1", "dpi": str(DPI)},
                           files={"scan": ("blank.png", blank_scan(), "image/png")}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def draft_of(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="draft-data">(.*?)</script>', html, re.S).group(1))


def send(site: Clients, url: str, draft: dict):
    client, csrf = site.client("ade")
    return client.post(url, content=json.dumps(draft), headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})


def test_only_an_admin_may_open_the_editor(site):
    for name in ("olga", "rudi"):
        client, csrf = site.client(name)
        assert client.get("/admin/templat").status_code == 403
        assert client.post("/admin/templat", data={"csrf": csrf}).status_code == 403
    client, _ = site.client("ade")
    page = client.get("/admin/templat")
    assert page.status_code == 200 and "Templat milik kantor" in page.text and "Cari kotak" in page.text


def test_a_scan_that_is_no_form_is_refused_in_indonesian(site):
    client, csrf = site.client("ade")
    blank = cv2.imencode(".png", np.full((600, 420), 255, np.uint8))[1].tobytes()
    response = client.post("/admin/templat", data={"csrf": csrf, "template_id": "x", "page": "1", "dpi": "50.8"},
                           files={"scan": ("white.png", blank, "image/png")})
    assert response.status_code == 422 and "Tidak ada templat yang dapat dipelajari" in response.text
    neither = client.post("/admin/templat", data={"csrf": csrf, "template_id": "x", "page": "1"},
                          files={"scan": ("white.png", blank, "image/png")})
    assert neither.status_code == 400 and "DPI" in neither.text


def test_an_invalid_save_shows_every_problem_and_writes_nothing(site):
    url = learn(site, "kantor-salah")
    client, csrf = site.client("ade")
    draft = draft_of(client.get(url).text)
    assert [f["id"] for f in draft["fields"]][:2] == ["row_01_col_1", "row_02_col_1"]
    draft["rules"] = [{"expr": "row_01_col_1 = row_02_col_1 + tidak_ada", "accepted": True},
                      {"expr": "row_01_col_1 = = 2", "accepted": True}]
    assert send(site, url, draft).json() == {"saved": True}
    saved = client.post(f"{url}/simpan", data={"csrf": csrf})
    assert saved.status_code == 422
    assert "Templat belum dapat disimpan: 2 masalah" in saved.text
    assert "names unknown field &#39;tidak_ada&#39;" in saved.text and "rules.1" in saved.text
    assert not list((site.tmp / "own").glob("kantor-salah*"))
    # Bad ids are the file format's problems: all of them at once, too.
    draft["rules"] = []
    draft["fields"][0]["id"], draft["fields"][1]["id"] = "Suara Sah", "suara-tidak-sah"
    send(site, url, draft)
    saved = client.post(f"{url}/simpan", data={"csrf": csrf})
    assert saved.status_code == 422 and "2 masalah" in saved.text
    assert "pages.0.fields.0.id" in saved.text and "pages.0.fields.1.id" in saved.text


def test_a_fixed_draft_is_saved_into_the_catalogue_and_reads_a_filled_scan(site):
    url = learn(site)
    client, csrf = site.client("ade")
    draft = draft_of(client.get(url).text)
    first = draft["fields"][0]
    first.update(id="suara_sah", label="A. Jumlah seluruh suara sah")
    first["boxes_mm"] = [[x + 0.2, y, w, h] for x, y, w, h in first["boxes_mm"]]  # moved 0.2 mm right
    draft["fields"][3]["id"], draft["fields"][7]["id"] = "suara_tidak_sah", "suara_total"
    date = draft["fields"][8:]  # the date's three fields (2 + 2 + 4 boxes), not a count: removed
    assert [len(f["boxes_mm"]) for f in date] == [2, 2, 4]
    draft["fields"] = draft["fields"][:8]
    draft["rules"] = [{"expr": "suara_total = suara_sah + suara_tidak_sah", "accepted": True}]
    send(site, url, draft)
    saved = client.post(f"{url}/simpan", data={"csrf": csrf}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    path = site.tmp / "own" / "kantor-c1.yaml"
    document = yaml.safe_load(path.read_text())
    assert document["reference_form"] == "kantor-c1" and document["description"] == "C1 kantor"
    assert (site.tmp / "own" / document["pages"][0]["image"]).is_file()
    assert document["rules"] == [{"expr": "suara_total = suara_sah + suara_tidak_sah", "note": "accepted by a person"}]
    assert "field suara_sah: id (was row_01_col_1), label, boxes" in document["edited_by_person"]
    assert "field row_08_col_3: removed" in document["edited_by_person"]
    template = get_template("kantor-c1")  # the catalogue read again at once
    assert len(template.page(1).fields) == 8 and [r.expr for r in template.rules] == [draft["rules"][0]["expr"]]
    assert "Templat kantor-c1 disimpan" in client.get(url).text
    audit = site.reviews.audit(limit=1)[0]
    assert audit["action"] == "template_save" and audit["detail"]["template"] == "kantor-c1"

    tried = client.post(f"{url}/coba", data={"csrf": csrf}, files={"photo": ("tps-1.png", filled_scan(), "image/png")},
                        follow_redirects=False)
    assert tried.status_code == 303, tried.text
    page = client.get(url).text
    row = re.search(r'<tr class="[a-z]+"><td>A. Jumlah seluruh suara sah <code class="field-id">suara_sah</code></td>'
                    r'\s*<td>(\d+)</td>', page)
    assert row and int(row.group(1)) == VALUES["suara_sah"], page
    assert client.get(f"{url}/coba.jpg").headers["content-type"] == "image/jpeg"


def test_formc_serve_puts_its_templates_folder_first_in_formc_templates(tmp_path, monkeypatch):
    from ocr.templates.catalog import add_own_folder, own_folders
    from ocr.web.app import own_templates_folder

    monkeypatch.setenv("FORMC_TEMPLATES", str(tmp_path / "shared"))
    (tmp_path / "shared").mkdir()
    assert own_templates_folder(None, tmp_path / "store") == tmp_path / "shared"  # the first folder of the variable
    assert own_templates_folder(tmp_path / "mine", tmp_path / "store") == tmp_path / "mine"
    try:
        add_own_folder(tmp_path / "mine")
        add_own_folder(tmp_path / "mine")  # once only
        assert own_folders() == [tmp_path / "mine", tmp_path / "shared"] and (tmp_path / "mine").is_dir()
        monkeypatch.delenv("FORMC_TEMPLATES")
        assert own_templates_folder(None, tmp_path / "store") == tmp_path / "store" / "templates"
    finally:
        reload_templates()


def test_a_draft_tried_changed_and_tried_again_under_its_id_is_read_with_its_new_boxes(site):
    """The reader caches a template page's blank and its checkable edges: by content, not only by id and version."""
    url = learn(site, "kantor-ulang")
    client, csrf = site.client("ade")
    draft = draft_of(client.get(url).text)
    draft["fields"][0]["id"] = "suara_sah"
    for fields in (draft["fields"], draft["fields"][:8]):
        send(site, url, {**draft, "fields": fields})
        client.post(f"{url}/coba", data={"csrf": csrf}, files={"photo": ("tps-1.png", filled_scan(), "image/png")})
        page = client.get(url).text
        assert "galat" not in page and len(re.findall(r'<tr class="[a-z]+"><td>', page)) == len(fields)


def test_a_photo_of_a_form_without_markers_is_learned_by_its_sheet_and_saved_naming_the_photo(site):
    """The sheet's size instead of a DPI: the photo is flattened by the sheet's outline (as `template learn
    --page-mm`), and the saved file names the photo and its flattening."""
    page = _markers_painted_out(render_page(KWK, 1, DPI), KWK)
    rng = np.random.default_rng(25)  # upright, in perspective: tests/templates/test_learn.py's photo
    profile = dataclasses.replace(PROFILES["phone"], bend_mm=0.0)
    jpeg, _ = photograph(cv2.cvtColor(page, cv2.COLOR_GRAY2BGR), px_per_mm(DPI), KWK.page_size_mm,
                         plan_photo(profile, KWK.page_size_mm, rng), profile, rng)
    client, csrf = site.client("ade")
    form = {"csrf": csrf, "template_id": "kantor-foto", "description": "C1 dari foto", "page": "1"}
    refused = client.post("/admin/templat", data={**form, "sheet_mm": "600x900", "dpi": "127"},
                          files={"scan": ("foto.jpg", jpeg, "image/jpeg")})
    assert refused.status_code == 400 and "ukuran lembar dalam mm" in refused.text  # one way only
    learned = client.post("/admin/templat", data={**form, "sheet_mm": "600 x 900", "turn": "0"},
                          files={"scan": ("foto.jpg", jpeg, "image/jpeg")}, follow_redirects=False)
    assert learned.status_code == 303, learned.text
    url = learned.headers["location"]
    draft = draft_of(client.get(url).text)
    assert len(draft["fields"]) == len(KWK.page(1).fields)
    draft["rules"] = []
    send(site, url, draft)
    saved = client.post(f"{url}/simpan", data={"csrf": csrf}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    document = yaml.safe_load((site.tmp / "own" / "kantor-foto.yaml").read_text())
    flattened = document["pages"][0]["flattened"]
    assert len(flattened["corners_px"]) == 4 and flattened["size_px"] == [1800, 2700]
    assert get_template("kantor-foto").page(1).reference.flattened_corners_px is not None

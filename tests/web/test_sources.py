"""The discrepancy view (/selisih, issue 21): a TPS whose two reads disagree and a sheet filed under two TPS listed
with their photos side by side; a reviewer's choice of a source logged, refused to the uploader (four eyes) and to
operators; the list paged. Where reviewers work: the review page shows its TPS's conflict and verifying waits for a
choice; the queue filters to and badges such TPS, the dashboard counts them. TestClient on a real SQLite database,
records saved directly (no photos are read)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from ocr.web import routes_sources
from tests.db.test_store import PHOTOS
from tests.review.test_conflicts import at, checked, tps_of
from tests.review.test_sources import KEY, read
from tests.web.conftest import Clients, app_with_users

USERS = {"olga": "operator", "rudi": "reviewer", "rina": "reviewer"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[Clients]:
    with app_with_users(tmp_path_factory.mktemp("sources"), USERS) as env:
        # Every read of `tally` has one page hash: `elsewhere` (no place) shows the sheet of the TPS's two reads.
        env.app.state.store.save_many([read("plano", 1, 172), read("salinan", 2, 127), read("elsewhere", 3, 5, None)])
        yield env

def test_operators_may_neither_see_nor_choose(env):
    olga, csrf = env.client("olga")
    assert olga.get("/selisih").status_code == 403
    refused = olga.post("/selisih/choose", data={"csrf": csrf, "tps": KEY, "ref": "submission:1", "reason": "x"})
    assert refused.status_code == 403
    assert "choose_source" not in [e["action"] for e in env.reviews.audit()]


def test_the_page_lists_disagreeing_sources_and_one_sheet_under_two_tps_with_their_photos(env):
    rudi, _ = env.client("rudi")
    page = rudi.get("/selisih")
    assert page.status_code == 200
    ids = {name: env.reviews.id_of(name, f"{n:064x}") for n, name in enumerate(["plano", "salinan", "elsewhere"], 1)}
    assert "source_conflict: suara_paslon_1 salinan 127 vs plano 172" in page.text
    # Each source's read page (page 2, its first photo: previews are named by the photo's position), side by side.
    assert f'src="/submissions/{ids["plano"]}/page-0.jpg" alt="plano, halaman 2"' in page.text
    assert f'src="/submissions/{ids["salinan"]}/page-0.jpg" alt="salinan, halaman 2"' in page.text
    assert f'src="/submissions/{ids["elsewhere"]}/photos/{PHOTOS[0]}"' in page.text  # the sheet under another TPS
    assert page.text.count("0 bit") == 2  # elsewhere against the plano, and against the salinan; not the two reads


def test_a_choice_is_logged_and_refused_to_the_uploader(env):
    plano = env.reviews.id_of("plano", f"{1:064x}")
    rina, rina_csrf = env.client("rina")
    env.reviews.record_upload(plano, env.reviews.credentials("rina")[0], [PHOTOS[0]])
    form = {"tps": KEY, "ref": f"submission:{plano}", "reason": "the salinan's 127 is a copying slip"}
    refused = rina.post("/selisih/choose", data=form | {"csrf": rina_csrf})
    assert refused.status_code == 403 and "empat mata" in refused.text
    rudi, csrf = env.client("rudi")
    chosen = rudi.post("/selisih/choose", data=form | {"csrf": csrf}, follow_redirects=False)
    assert chosen.status_code == 303
    entry = env.reviews.audit(1)[0]
    assert (entry["action"], entry["user"], entry["submission_id"]) == ("choose_source", "rudi", plano)
    assert entry["detail"]["chosen"] == "plano" and entry["detail"]["was"] == "salinan"
    assert "dipilih oleh rudi" in rudi.get("/selisih").text
    empty = rudi.post("/selisih/choose", data=form | {"csrf": csrf, "reason": " "})
    assert empty.status_code == 422
    nowhere = rudi.post("/selisih/choose", data=form | {"csrf": csrf, "tps": "place:../1/x"})
    assert nowhere.status_code == 422 and "TPS ini tidak memiliki sumber tersebut" in nowhere.text


def test_the_review_page_shows_its_tps_conflict_and_verifying_waits_for_a_choice(env):
    env.app.state.store.save_many([checked("kpps", 11, 300, at(11)), checked("saksi", 12, 30, at(11))])
    kpps, saksi = (env.reviews.id_of(name, f"{n:064x}") for name, n in (("kpps", 11), ("saksi", 12)))
    rudi, csrf = env.client("rudi")
    page = rudi.get(f"/review/{kpps}").text
    assert "Sumber TPS ini berselisih" in page and "sumber TPS berselisih" in page  # the card, and the field's reason
    assert "source_conflict" in page and f'href="/review/{saksi}">saksi</a>' in page
    assert re.search(r">saksi</a>\s*<strong>30</strong>.*kpps <span class=\"muted\">\(bacaan ini\)</span>\s*<strong>300<",
                     page, re.S)  # the field's value in each source, the newest first
    assert f'href="/selisih?tps={quote(tps_of(11))}"' in page
    assert 'id="verify"' not in page and "Belum dapat diverifikasi: sumber TPS ini berselisih pada suara_paslon_1" in page
    refused = rudi.post(f"/review/{kpps}/verify", data={"csrf": csrf})
    assert refused.status_code == 409 and "pilih hasilnya di Selisih" in refused.text
    assert env.reviews.view(kpps).state == "open"

    rina, rina_csrf = env.client("rina")
    chosen = rina.post("/selisih/choose", data={"csrf": rina_csrf, "tps": tps_of(11), "ref": f"submission:{kpps}",
                                                "reason": "the witness copied 300 as 30", "back": "/selisih?page=1"},
                       follow_redirects=False)
    assert chosen.headers["location"] == "/selisih?page=1"
    assert "kpps adalah hasil TPS ini, dipilih oleh rina" in rudi.get(f"/review/{kpps}").text
    assert rudi.post(f"/review/{kpps}/verify", data={"csrf": csrf}, follow_redirects=False).status_code == 303


def test_the_queue_filters_to_tps_in_conflict_with_a_badge_and_the_dashboard_counts_them(env):
    rudi, _ = env.client("rudi")
    listed = rudi.get("/queue?conflict=1").text
    assert ">plano</a>" in listed and ">salinan</a>" in listed and ">elsewhere</a>" not in listed
    assert listed.count('class="badge conflict"') == listed.count("<tr><td>")  # every row of the filter has one
    assert ">elsewhere</a>" in rudi.get("/queue").text
    total, undecided = env.app.state.sources.conflict_counts()
    board = rudi.get("/dashboard").text
    assert total >= 1 and "TPS yang sumbernya berselisih" in board and f"<strong>{total} TPS</strong>" in board
    assert f"{undecided} belum dipilih hasilnya" in board and 'href="/selisih"' in board


def test_selisih_pages_through_the_tps_in_conflict_two_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(routes_sources, "SELISIH_PAGE", 2)
    with app_with_users(tmp_path, {"rudi": "reviewer"}) as paged:
        paged.app.state.store.save_many([r for n in range(1, 6) for r in (read(f"a{n}", 2 * n, 1, at(n)),
                                                                           read(f"b{n}", 2 * n + 1, 2, at(n)))])
        rudi, _ = paged.client("rudi")
        seen, url = [], "/selisih"
        while url:
            page = rudi.get(url).text
            assert "dari 5." in page
            seen += re.findall(r"<h3>([^<]+)</h3>", page)
            following = re.search(r'<a href="([^"]+)" rel="next">', page)
            url = following.group(1).replace("&amp;", "&") if following else None
        assert seen == sorted(tps_of(n) for n in range(1, 6))  # every TPS, none twice
        assert re.findall(r"<h3>([^<]+)</h3>", rudi.get(f"/selisih?tps={quote(tps_of(3))}").text) == [tps_of(3)]

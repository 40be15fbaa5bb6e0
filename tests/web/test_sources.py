"""The discrepancy view (/selisih, issue 21): a TPS whose two reads disagree and a sheet filed under two TPS listed
with their photos side by side; a reviewer's choice of a source logged, refused to the uploader (four eyes) and to
operators. TestClient on a real SQLite database, records saved directly (no photos are read)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.db.test_store import PHOTOS
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
    assert f'src="/submissions/{ids["plano"]}/page-2.jpg"' in page.text  # each source's read page, side by side
    assert f'src="/submissions/{ids["salinan"]}/page-2.jpg"' in page.text
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

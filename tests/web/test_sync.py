"""POST /api/sync (issue 21): an office's bundle pushed to the centre is imported once, whoever sends it again; a
changed or untrusted bundle is answered 4xx with the reason in Bahasa Indonesia; `formc sync push` against a served
app."""

from __future__ import annotations

from click.testing import CliRunner
from starlette.testclient import TestClient

from cli import main
from ocr.review.sync.keys import new_key, trust
from tests.review.test_sync import flipped, make_office
from tests.web.conftest import app_with_users, served


def test_an_office_pushes_a_bundle_once_and_a_changed_or_untrusted_one_is_refused(tmp_path):
    office = make_office(tmp_path / "office")
    bundle = tmp_path / "b.zip"
    office.export(bundle)
    office.store.close()
    with app_with_users(tmp_path / "centre", {}) as clients:
        client = TestClient(clients.app)  # no log-in: the signature is the credential
        untrusted = client.post("/api/sync", content=bundle.read_bytes())
        assert untrusted.status_code == 403 and untrusted.json()["reason"] == "unknown_signer"
        assert "tidak punya kunci terdaftar" in untrusted.json()["message"]
        trust(clients.app.state.store.engine, office.key.office, office.key.public)

        first = client.post("/api/sync", content=bundle.read_bytes())
        assert first.status_code == 200 and (first.json()["merged"], first.json()["photos"]) == (3, 6)
        again = client.post("/api/sync", content=bundle.read_bytes())
        assert (again.json()["merged"], again.json()["unchanged"]) == (0, 3)
        assert clients.app.state.reviews.submissions_size() == 3

        changed = client.post("/api/sync", content=flipped(bundle, 100, tmp_path / "changed.zip").read_bytes())
        assert changed.status_code == 422 and changed.json()["reason"] == "member_hash_mismatch"
        assert "bukan yang ditandatangani kantor" in changed.json()["message"]
        english = TestClient(clients.app, cookies={"formc_lang": "en"}).post("/api/sync", content=b"not a zip")
        assert english.status_code == 422 and english.json()["message"].startswith("not a formc sync bundle")

        with served(clients.app) as url:
            trust(clients.app.state.store.engine, office.key.office, new_key(office.key.office).public)
            pushed = CliRunner().invoke(main, ["sync", "push", str(bundle), "--to", url])
            assert pushed.exit_code == 1 and "refused" in pushed.output and "(403): bad_signature" in pushed.output
            trust(clients.app.state.store.engine, office.key.office, office.key.public)
            pushed = CliRunner().invoke(main, ["sync", "push", str(bundle), "--to", url])
            assert pushed.exit_code == 0 and "3 submissions, 0 merged, 3 imported before" in pushed.stderr

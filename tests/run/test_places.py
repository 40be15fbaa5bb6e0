"""Where a result belongs (issue 20): a manifest's region columns and the folder layout `<kode kelurahan>/TPS-001`
carry the TPS identity to the JSONL, the database, the exports and the dashboard; a place the registry lacks, or one
that cannot be read, is refused with its reason and the batch goes on. `formc batch` in process on the bundled
sample, a real SQLite database and the shipped region list; `formc regions show` and `import`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from cli import main
from ocr.db.regions import Region, Regions, plain_code, read_csv
from ocr.db.store import ResultStore, default_url
from ocr.eval.score import load_results
from ocr.record import TpsIdentity
from ocr.review.dashboard import dashboard
from ocr.review.exports import results_csv, results_jsonl
from ocr.review.workflow import Reviews

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "ppwp-2024" / "tps-0001"
CILEUNYI_KULON = "3204052001"  # Jawa Barat, Kabupaten Bandung, kecamatan Cileunyi


def batch(*args: str) -> str:
    ran = CliRunner().invoke(main, ["batch", *args, "--workers", "1"])
    assert ran.exit_code == 0, ran.output
    return ran.output


def test_manifest_columns_carry_the_place_to_jsonl_database_and_exports_and_unknown_codes_are_refused(tmp_path):
    pages = sorted(SAMPLE.glob("page-*.jpg"))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("submission;path;kode_wilayah;tps;pemilihan\n"
                        f"bdg/tps-1;{pages[0]};32.04.05.2001;1;Presiden\n"
                        f"bdg/tps-1;{pages[1]};;;\n"
                        f"bdg/tps-1;{pages[2]};;;\n"
                        f"nowhere/tps-1;{pages[0]};9999999999;1;presiden\n"
                        f"badvote/tps-2;{pages[1]};{CILEUNYI_KULON};2;dprd\n")
    out, url = tmp_path / "r.jsonl", default_url(tmp_path / "r.db")
    batch(str(manifest), "--out", str(out), "--db", url)
    by_name = {r.submission: r for r in load_results(out)}
    place = TpsIdentity(desa=CILEUNYI_KULON, tps=1, election="presiden")
    assert by_name["bdg/tps-1"].place == place and by_name["bdg/tps-1"].status in ("ok", "review")
    # Refused with their reasons, not read; the batch went on.
    for name, code in (("nowhere/tps-1", "unknown_region"), ("badvote/tps-2", "bad_tps_identity")):
        refused = by_name[name]
        assert (refused.status, [r.code for r in refused.reasons], refused.place, refused.fields) == ("rejected", [code],
                                                                                                        None, {})
        assert all(p.errors[0].code == code for p in refused.pages)
    with ResultStore(url) as store:
        for result in by_name.values():
            assert store.get(result.submission, result.photos_key) == result
        reviews = Reviews(store)
        view = reviews.view(reviews.id_of("bdg/tps-1", by_name["bdg/tps-1"].photos_key))
        assert view.region == "Kabupaten Bandung"
        row = results_csv([view]).decode().splitlines()[1].split(",")
        assert row[:5] == ["bdg/tps-1", "Kabupaten Bandung", CILEUNYI_KULON, "1", "presiden"]
        assert json.loads(results_jsonl([view]))["place"] == place.model_dump()
        # The dashboard's region is the kabupaten/kota; a result without a place keeps the name's first segment.
        store.save(by_name["bdg/tps-1"].model_copy(update={"submission": "kab-x/tps-9", "place": None}))
        assert set(dashboard(store)["by_region"]) == {"Kabupaten Bandung", "kab-x", "nowhere", "badvote"}
    assert "0 submissions read" in batch(str(manifest), "--out", str(out), "--db", url)  # refusals are records too


def test_the_folder_layout_names_the_tps_and_the_election_comes_from_the_option(tmp_path):
    inbox = tmp_path / "in"
    shutil.copytree(SAMPLE, inbox / CILEUNYI_KULON / "TPS-007", ignore=shutil.ignore_patterns("truth.json"))
    out, url = tmp_path / "r.jsonl", default_url(tmp_path / "r.db")
    batch(str(inbox), "--out", str(out), "--db", url, "--election", "presiden")
    [result] = load_results(out)
    assert result.place == TpsIdentity(desa=CILEUNYI_KULON, tps=7, election="presiden")
    with ResultStore(url) as store:
        assert store.get(result.submission, result.photos_key).place == result.place
    # Without --election the layout names no election: refused with its reason, not read.
    batch(str(inbox), "--out", str(tmp_path / "r2.jsonl"))
    [again] = load_results(tmp_path / "r2.jsonl")
    assert (again.status, again.reasons[0].code, again.place) == ("rejected", "bad_tps_identity", None)


def test_the_registry_is_the_official_list_and_show_and_import_work_on_a_database(tmp_path):
    url = default_url(tmp_path / "r.db")
    runner = CliRunner()
    shown = runner.invoke(main, ["regions", "show", "32.04.05.2001", "--db", url])
    assert shown.exit_code == 0, shown.output
    assert [line.split(None, 2)[-1] for line in shown.output.splitlines()] == [
        "Jawa Barat", "Kabupaten Bandung", "Cileunyi", "Cileunyi Kulon"]
    with ResultStore(url) as store:
        registry = Regions(store.engine)
        assert len(registry.children()) == 38 and len(registry.children("3204")) > 20
        assert registry.known_desa({CILEUNYI_KULON, "9999999999", "3204"}) == {CILEUNYI_KULON}
    new_list = tmp_path / "regions.csv"
    new_list.write_text("code,name\n32.04.05.9001,Desa Baru\n3204,Kabupaten Bandung Raya\n")
    imported = runner.invoke(main, ["regions", "import", str(new_list), "--db", url])
    assert imported.exit_code == 0, imported.output
    shown = runner.invoke(main, ["regions", "show", "3204059001", "--db", url])
    assert shown.output.splitlines()[1].endswith("Kabupaten Bandung Raya") and "Desa Baru" in shown.output
    unknown = runner.invoke(main, ["regions", "show", "9999999999", "--db", url])
    assert unknown.exit_code == 1 and "not in the region registry" in unknown.output
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\n32.0,Nowhere\n")
    refused = runner.invoke(main, ["regions", "import", str(bad), "--db", url])
    assert refused.exit_code == 1 and "line 2" in refused.output


def test_codes_are_read_dotted_or_plain():
    assert [plain_code(c) for c in ("32.04.05.2001", "3204052001", "32", "320", "32.04.5")] == [
        CILEUNYI_KULON, CILEUNYI_KULON, "32", None, None]
    assert read_csv("\ufeffname,code\nAceh,11\n") == [Region("11", "Aceh")]

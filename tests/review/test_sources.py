"""More than one source per TPS (issue 21): two reads that disagree flag the TPS with both values; numbers imported
from a CSV through a mapping are compared field by field and never chosen by themselves; a mapping that names a
field the template lacks is refused; a reviewer's choice is logged, four eyes kept. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ocr.db.store import ResultStore
from ocr.record import SubmissionResult, TpsIdentity
from ocr.review.accounts import hash_password
from ocr.review.conflicts import tps_key
from ocr.review.errors import FourEyes
from ocr.review.external import MappingError, load_mapping, read_numbers
from ocr.review.sources import Sources
from ocr.review.workflow import Reviews
from tests.db.test_store import tally

PLACE = TpsIdentity(desa="3204052001", tps=7, election="gubernur")
KEY = tps_key(PLACE.desa, PLACE.tps, PLACE.election, "")
MAPPING = """\
template: kwk-gubernur-3
place: {desa: kode_wilayah, tps: tps}
election: gubernur
fields: {suara_1: suara_paslon_1, suara_2: suara_paslon_2}
"""


def read(name: str, n: int, paslon_1: int, place: TpsIdentity | None = PLACE) -> SubmissionResult:
    return tally("review", paslon_1).model_copy(update={"submission": name, "photos_key": f"{n:064x}", "place": place})


def test_two_reads_of_a_tps_that_disagree_flag_it_with_both_values(sources):
    sources.reviews.store.save_many([read("plano", 1, 172), read("salinan", 2, 127), read("elsewhere", 3, 5, None)])
    tps = sources.of(KEY)
    assert [str(c) for c in tps.conflicts] == ["source_conflict: suara_paslon_1 salinan 127 vs plano 172"]
    assert tps.chosen.label == "salinan" and tps.chosen_by is None  # the newest read, while none is verified
    assert [t.key for t in sources.in_conflict(10)] == [KEY]  # `elsewhere` is a TPS of one source
    assert sources.conflict_counts() == (1, 1)


def test_a_tps_without_a_place_is_its_name(sources):
    sources.reviews.store.save_many([read("kab-x/tps-1", 1, 10, None), read("kab-x/tps-1", 2, 11, None)])
    first, second = (sources.reviews.id_of("kab-x/tps-1", f"{n:064x}") for n in (1, 2))
    assert [str(c) for c in sources.of("name:kab-x/tps-1").conflicts] == [
        f"source_conflict: suara_paslon_1 kab-x/tps-1#{second} 11 vs kab-x/tps-1#{first} 10"]


def test_external_numbers_are_compared_field_by_field_never_chosen_and_a_choice_is_logged(sources, tmp_path):
    reviews = sources.reviews
    reviews.store.save(read("plano", 1, 172))
    (tmp_path / "map.yaml").write_text(MAPPING)
    (tmp_path / "kpu.csv").write_text("kode_wilayah,tps,suara_1,suara_2\n32.04.05.2001,7,127,244\n"
                                      "3204052001,8,1,2\n")
    rows = read_numbers(tmp_path / "kpu.csv", load_mapping(tmp_path / "map.yaml"))
    assert rows[KEY] == {"suara_paslon_1": 127, "suara_paslon_2": 244}
    sources.import_numbers("kpu", "kwk-gubernur-3", rows)
    tps = sources.of(KEY)
    # suara_paslon_2 agrees (244), the other fields are not in the file: one disagreement.
    assert [str(c) for c in tps.conflicts] == ["source_conflict: suara_paslon_1 plano 172 vs kpu 127"]
    assert tps.chosen.label == "plano"
    assert sources.of("place:3204052001/8/gubernur").chosen is None  # numbers alone are no result

    kpu = next(s for s in tps.sources if s.submission_id is None)
    uploader = reviews.add_user(f"olga-{uuid.uuid4().hex[:6]}", "reviewer", hash_password("a long password"))
    reviews.record_upload(tps.chosen.submission_id, uploader, ["a" * 64])
    rudi = reviews.add_user(f"rudi-{uuid.uuid4().hex[:6]}", "reviewer", hash_password("a long password"))
    sources.choose(KEY, kpu.ref, rudi, "the plano photo is misread, KPU's salinan agrees with the witness")
    chosen = sources.of(KEY)
    assert chosen.chosen.label == "kpu" and chosen.chosen_by == rudi.name
    entry = reviews.audit(1)[0]
    assert entry["action"] == "choose_source" and entry["user"] == rudi.name
    assert entry["detail"] | {} == {"tps": KEY, "chosen": "kpu", "was": "plano",
                                    "reason": "the plano photo is misread, KPU's salinan agrees with the witness"}
    with pytest.raises(FourEyes):  # who uploaded the plano may not make it the result
        sources.choose(KEY, f"submission:{tps.chosen.submission_id}", uploader, "mine is right")
    assert sources.of(KEY).chosen.label == "kpu"


@pytest.mark.parametrize(("mapping", "message"), [
    (MAPPING.replace("suara_paslon_2", "suara_paslon_9"), "kwk-gubernur-3 has no field suara_paslon_9"),
    (MAPPING.replace("election: gubernur\n", ""), "say the election"),
    (MAPPING.replace("kwk-gubernur-3", "kwk-nothing"), "no template 'kwk-nothing'"),
])
def test_a_mapping_error_is_refused_with_what_is_wrong(tmp_path, mapping, message):
    (tmp_path / "map.yaml").write_text(mapping)
    with pytest.raises(MappingError, match=message):
        load_mapping(tmp_path / "map.yaml")


def test_a_file_the_mapping_does_not_fit_is_refused_with_its_row(tmp_path):
    (tmp_path / "map.yaml").write_text(MAPPING)
    mapping = load_mapping(tmp_path / "map.yaml")
    (tmp_path / "a.csv").write_text("kode_wilayah,tps,suara_1\n3204052001,7,12\n")
    with pytest.raises(MappingError, match="a.csv row 1: no column 'suara_2'"):
        read_numbers(tmp_path / "a.csv", mapping)
    (tmp_path / "b.csv").write_text("kode_wilayah,tps,suara_1,suara_2\n3204052001,7,12,x\n")
    with pytest.raises(MappingError, match="row 1 column 'suara_2': 'x' is not a number of votes"):
        read_numbers(tmp_path / "b.csv", mapping)


def test_formc_sources_import_reads_kpu_style_json_and_prints_the_disagreements(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    with ResultStore(url) as store:
        store.save(read("plano", 1, 172))
    (tmp_path / "map.yaml").write_text("template: kwk-gubernur-3\n"
                                       "place: {desa: kode, tps: tps, election: pemilihan}\n"
                                       "fields: {chart.100025: suara_paslon_1, chart.100026: suara_paslon_2}\n")
    Path(tmp_path / "kpu.json").write_text('[{"kode": "3204052001", "tps": "007", "pemilihan": "gubernur", '
                                           '"chart": {"100025": 127, "100026": 244}}]')
    runner = CliRunner()
    args = ["sources", "import", str(tmp_path / "kpu.json"), "--db", url, "--mapping", str(tmp_path / "map.yaml"),
            "--source-name", "kpu"]
    done = runner.invoke(main, args)
    assert done.exit_code == 0, done.output
    assert f"{KEY} source_conflict: suara_paslon_1 plano 172 vs kpu 127" in done.output
    assert runner.invoke(main, args).exit_code == 0  # again: replaced, not a second copy
    with ResultStore(url) as store:
        assert [s.label for s in Sources(Reviews(store)).of(KEY).sources] == ["plano", "kpu"]
    (tmp_path / "map.yaml").write_text(MAPPING.replace("suara_paslon_2", "suara_paslon_9"))
    refused = runner.invoke(main, args)
    assert refused.exit_code == 1 and "kwk-gubernur-3 has no field suara_paslon_9" in refused.output

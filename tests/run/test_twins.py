"""Twins (ocr/run/twins.py): which submissions of identical photos are flagged, and how."""

from __future__ import annotations

from ocr.db.store import ResultStore, default_url
from ocr.reader.reasons import FindingCode, ReasonCode
from ocr.record import error_result
from ocr.run.batch import Output, save_missing
from ocr.run.twins import Twins

SOURCES = ["page-1.jpg", "page-2.jpg"]


def crashed(name: str, hashes: list[str]):
    return error_result(name, SOURCES, hashes, ReasonCode.WORKER_CRASHED, "worker killed")


def test_a_later_name_with_the_same_photos_is_flagged_and_keeps_a_status_that_already_stops_it():
    twins = Twins()
    first = crashed("tps-1", ["a" * 64, "b" * 64])
    assert twins.check(first) is first and twins.check(first) is first  # the original, seen again: unchanged
    flagged = twins.check(crashed("tps-2", ["b" * 64, "a" * 64]))
    assert flagged.status == "error"  # not softened to review
    assert [(r.code, r.detail) for r in flagged.reasons][-1] == (FindingCode.DUPLICATE_PHOTOS, "tps-1")
    ok = first.model_copy(update={"submission": "tps-3", "status": "ok", "reasons": []})
    assert twins.check(ok).status == "review" and ok.status == "ok"  # a flagged copy; the read itself is untouched


def test_the_output_already_written_names_the_original():
    first = crashed("tps-1", ["a" * 64, "b" * 64])
    twins = Twins({("tps-9", first.photos_key): "{...}", ("tps-1", first.photos_key): "{...}"})  # JSONL order
    assert [r.detail for r in twins.check(first).reasons][-1] == "tps-9"


def test_submissions_of_photos_that_could_not_be_loaded_are_never_twins():
    # A manifest naming one missing file for two TPS: the key is made of names, not of photos.
    twins = Twins()
    unloaded = crashed("tps-1", ["", ""])
    assert twins.check(unloaded) is unloaded
    again = crashed("tps-2", ["", ""])
    assert again.photos_key == unloaded.photos_key and twins.check(again) is again


def test_a_resumed_batch_saves_the_flag_its_cluster_workers_did_not(tmp_path):
    # The workers saved both twins unflagged; the driver wrote the flagged line and was killed before saving it.
    first, twin = crashed("tps-1", ["a" * 64, "b" * 64]), crashed("tps-2", ["a" * 64, "b" * 64])
    flagged_twin = Twins([("tps-1", first.photos_key)]).check(twin)
    out = tmp_path / "r.jsonl"
    out.write_text(first.model_dump_json() + "\n" + flagged_twin.model_dump_json() + "\n")
    with ResultStore(default_url(tmp_path / "results.db")) as store:
        store.save_many([first, twin])
        with Output(out) as output:
            done = output.records()
        assert done.keys() == {("tps-1", first.photos_key), ("tps-2", first.photos_key)}
        save_missing(done, store)
        assert store.get("tps-2", twin.photos_key) == flagged_twin and store.get("tps-1", first.photos_key) == first

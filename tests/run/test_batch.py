"""The main job end to end: `formc batch` and `formc read` as real subprocesses on the bundled samples."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocr.db.store import ResultStore
from ocr.eval.score import evaluate_results, load_results
from ocr.record import SubmissionResult
from ocr.run.inputs import InputError, find_submissions

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "kwk-gubernur-3" / "tps-0001"


def formc(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, **kwargs)


def records(path: Path) -> list[SubmissionResult]:
    return load_results(path)


def _tps(root: Path, name: str, source: Path = SAMPLE) -> Path:
    shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("truth.json"))
    return root / name


def inbox_of(tmp_path: Path, count: int) -> Path:
    """An input folder of `count` copies of the sample TPS, tps-0 ... tps-<count - 1>."""
    inbox = tmp_path / "in"
    for i in range(count):
        _tps(inbox, f"tps-{i}")
    return inbox


def wait_for_lines(out: Path, lines: int) -> None:
    """Until a running batch has written `lines` records to `out` (at most 5 minutes)."""
    deadline = time.time() + 300
    while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < lines):
        time.sleep(0.1)


def test_a_batch_with_bad_files_writes_every_record_with_its_reason(tmp_path):
    inbox = tmp_path / "in"
    _tps(inbox, "kab-a/tps-good")
    jpeg = (SAMPLE / "page-1.jpg").read_bytes()
    (inbox / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (inbox / "empty.jpg").write_bytes(b"")
    (inbox / "notes.jpg").write_text("minutes of the KPPS meeting, not a photo")
    noise = np.random.default_rng(0).integers(0, 255, (1500, 1100), np.uint8)
    cv2.imwrite(str(inbox / "no-form.png"), cv2.GaussianBlur(noise, (0, 0), 3))
    (inbox / "readme.txt").write_text("not a photo by name: skipped and reported")
    out = tmp_path / "results.jsonl"
    run = formc("batch", str(inbox), "--out", str(out), "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert "skipped readme.txt: not a photo by name" in run.stderr and "5 submissions read" in run.stderr
    by_name = {r.submission: r for r in records(out)}
    assert sorted(by_name) == ["empty", "kab-a/tps-good", "no-form", "notes", "truncated"]
    codes = {name: [e.code for p in r.pages for e in p.errors] for name, r in by_name.items()}
    assert codes == {"empty": ["empty_file"], "kab-a/tps-good": [], "no-form": ["no_page_found"],
                     "notes": ["not_an_image"], "truncated": ["truncated"]}
    assert all(by_name[n].status == "rejected" for n in codes if n != "kab-a/tps-good")
    good = by_name["kab-a/tps-good"]
    assert good.status in ("ok", "review") and len(good.pages) == 3 and len(good.fields) > 40


def test_a_photo_of_another_template_is_refused_when_the_caller_names_one(tmp_path):
    other = REPO / "samples" / "ppwp-2024" / "tps-0001" / "page-1.jpg"
    run = formc("read", str(other), "--template", "kwk-gubernur-3", "--json")
    assert run.returncode == 0, run.stderr
    result = SubmissionResult.model_validate_json(run.stdout)
    assert result.status == "rejected" and result.pages[0].errors[0].code == "wrong_page"


def test_read_prints_a_table_and_json_that_matches_the_schema(tmp_path):
    photos = [str(p) for p in sorted(SAMPLE.glob("page-*.jpg"))]
    table = formc("read", *photos)
    assert table.returncode == 0, table.stderr
    assert "kwk-gubernur-3" in table.stdout and "suara_sah" in table.stdout
    as_json = formc("read", *photos, "--json")
    result = SubmissionResult.model_validate_json(as_json.stdout)
    truth = json.loads((SAMPLE / "truth.json").read_text())
    right = sum(result.fields[f].value == v for f, v in truth["fields"].items())
    assert right >= len(truth["fields"]) - 1  # the sample reads right (at most one field flagged and off)
    schema = json.loads(formc("schema").stdout)
    assert set(schema["required"]) >= {"submission", "photos_key", "template", "status", "pages"}


def test_resume_after_kill_9_keeps_every_record_once(tmp_path):
    inbox = inbox_of(tmp_path, 4)
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "batch", str(inbox), "--out", str(out),
                             "--workers", "1"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_lines(out, 1)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and its worker processes, mid-run
    proc.wait()
    first = out.read_text().splitlines()
    assert 1 <= len(first) < 4
    with out.open("a") as f:  # a record torn by the kill is read again, not kept
        f.write(first[0][:300])
    run = formc("batch", str(inbox), "--out", str(out), "--workers", "2")
    assert run.returncode == 0, run.stderr
    lines = out.read_text().splitlines()
    assert lines[: len(first)] == first  # what was written stays as written
    assert sorted(SubmissionResult.model_validate_json(line).submission for line in lines) == [f"tps-{i}" for i in range(4)]
    again = formc("batch", str(inbox), "--out", str(out), "--workers", "1")
    assert "0 submissions read" in again.stderr and "4 already in" in again.stderr
    assert out.read_text().splitlines() == lines


def test_inputs_from_a_zip_and_a_manifest(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for page in ("page-1.jpg", "page-2.jpg"):
            z.write(SAMPLE / page, f"tps-7/{page}")
        z.write(SAMPLE / "page-3.jpg", "loose.jpg")
        z.writestr("tps-7/truth.json", "{}")
    found = find_submissions(archive)
    assert [(s.submission, len(s.photos)) for s in found.submissions] == [("loose", 1), ("tps-7", 2)]
    assert [s.name for s in found.skipped] == ["upload.zip:tps-7/truth.json"]
    assert found.submissions[1].photos[0].read_bytes() == (SAMPLE / "page-1.jpg").read_bytes()
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"submission,path\nA,{SAMPLE / 'page-1.jpg'}\nA,{SAMPLE / 'page-2.jpg'}\nB,missing.jpg\n")
    found = find_submissions(manifest)
    assert [(s.submission, len(s.photos)) for s in found.submissions] == [("A", 2), ("B", 1)]
    (tmp_path / "bad.csv").write_text("tps;file\n")
    with pytest.raises(InputError):
        find_submissions(tmp_path / "bad.csv")


def test_a_missing_manifest_photo_is_a_record_not_a_crash(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("submission,path\nB,missing.jpg\n")
    out = tmp_path / "r.jsonl"
    run = formc("batch", str(manifest), "--out", str(out), "--workers", "1")
    assert run.returncode == 0, run.stderr
    (result,) = records(out)
    assert result.status == "rejected" and result.pages[0].errors[0].code == "file_unreadable"


def test_batch_into_a_database_and_eval_against_truth(tmp_path):
    out = tmp_path / "r.jsonl"
    url = f"sqlite:///{tmp_path / 'results.db'}"
    run = formc("batch", str(REPO / "samples" / "kwk-gubernur-3"), "--out", str(out), "--workers", "2", "--db", url)
    assert run.returncode == 0, run.stderr
    with ResultStore(url) as store:  # the database holds exactly what the JSONL says
        assert all(store.get(r.submission, r.photos_key) == r for r in records(out)) and len(store.keys()) == 2
    ev = evaluate_results(load_results(out), REPO / "samples" / "kwk-gubernur-3")
    assert ev.submissions == 2 and not ev.without_truth
    assert ev.fields > 80 and ev.accuracy > 0.98 and ev.silent == 0
    assert ev.by_status["review"] >= 1  # tps-0002 is written with an arithmetic slip
    printed = formc("eval", str(out), str(REPO / "samples" / "kwk-gubernur-3"))
    assert "silently wrong fields" in printed.stdout and "rule_failed" in printed.stdout


def test_preview_command_draws_each_photo_or_its_refusal(tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    run = formc("preview", str(SAMPLE / "page-3.jpg"), str(notes), "--out", str(tmp_path / "check.png"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("rejected") and "not_an_image" in run.stdout
    page = cv2.imread(str(tmp_path / "check-page-3.png"))
    refusal = cv2.imread(str(tmp_path / "check-notes.png"))
    assert page.shape[1] > page.shape[0] * 0.9 and page.shape[1] > 2000  # the page and its side panel
    assert refusal is not None and refusal.shape[1] == 1600


def test_the_in_process_engine_and_the_pool_write_the_same_records(tmp_path):
    """`--workers 1` reads in this process, more in a pool: one driver, the same records, each submission once."""
    from bench.compare_results import compare, load
    from ocr.run.batch import run_batch
    from ocr.run.local import InProcess, ProcessPool, local_engine

    found = find_submissions(REPO / "samples")
    assert isinstance(local_engine(1), InProcess) and isinstance(local_engine(2), ProcessPool)
    alone = run_batch(found.submissions, tmp_path / "alone.jsonl", local_engine(1))
    pooled = run_batch(found.submissions, tmp_path / "pool.jsonl", local_engine(2))
    assert alone.submissions == pooled.submissions == len(found.submissions) and alone.by_status == pooled.by_status
    diffs, submissions, fields, boxes = compare(load(tmp_path / "alone.jsonl"), load(tmp_path / "pool.jsonl"), 1e-9)
    assert diffs == [] and submissions == len(found.submissions) and fields > 100 and boxes > 100
    again = run_batch(found.submissions, tmp_path / "alone.jsonl", local_engine(1))  # resumed: nothing read twice
    assert again.submissions == 0 and again.already_done == len(found.submissions)


def test_identical_photos_under_two_tps_names_are_two_records_the_second_flagged(tmp_path):
    inbox, out = tmp_path / "in", tmp_path / "r.jsonl"
    _tps(inbox, "kab-a/tps-001")
    _tps(inbox, "kab-a/tps-002")  # byte-identical copies of the same photos
    url = f"sqlite:///{tmp_path / 'results.db'}"
    run = formc("batch", str(inbox), "--out", str(out), "--workers", "2", "--db", url)
    assert run.returncode == 0, run.stderr
    first, twin = records(out)  # the one written first is the original, whichever was read first
    assert first.photos_key == twin.photos_key and first.submission != twin.submission
    assert "duplicate_photos" not in [r.code for r in first.reasons] and first.status in ("ok", "review")
    assert twin.status == "review" and twin.reasons[-1].code == "duplicate_photos"
    assert twin.reasons[-1].detail == first.submission and twin.fields == first.fields
    assert evaluate_results([first, twin], inbox).reasons["duplicate_photos"] == 1  # `formc eval` lists it
    with ResultStore(url) as store:  # two rows, as two lines; the row holds the flag the line has
        assert store.keys() == {(first.submission, first.photos_key), (twin.submission, twin.photos_key)}
        assert store.get(first.submission, first.photos_key) == first and store.get(twin.submission, twin.photos_key) == twin
    again = formc("batch", str(inbox), "--out", str(out), "--workers", "1", "--db", url)
    assert "0 submissions read" in again.stderr and "2 already in" in again.stderr
    assert records(out) == [first, twin]
    with ResultStore(url) as store:
        assert len(store.keys()) == 2


def test_a_database_file_that_is_not_a_database_fails_the_batch_in_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"MZ\x90\x00 not SQLite at all " * 100)
    run = formc("batch", str(SAMPLE), "--out", str(tmp_path / "r.jsonl"), "--db", f"sqlite:///{junk}")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [f"Error: cannot open the results database sqlite:///{junk}: file is not a database"]
    assert not (tmp_path / "r.jsonl").exists()  # nothing read into a batch that cannot be kept

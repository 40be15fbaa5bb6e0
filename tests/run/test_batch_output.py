"""`formc batch`'s output file is its own or refused, one batch at a time, and never left with part of a record; the
run ends cleanly on Ctrl-C or SIGTERM, and every failure of its environment is one message with exit code 1."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ocr.record import SubmissionResult
from tests.run.test_batch import REPO, SAMPLE, formc, inbox_of, records, wait_for_lines


def _start(inbox: Path, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), "batch", str(inbox), "--out", str(out), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _one_clear_error(run: subprocess.CompletedProcess, *words: str) -> None:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("Error: ") == 1, run.stderr
    assert all(word in run.stderr for word in words), run.stderr


def _sqlite_file(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")


@pytest.mark.parametrize("content", ["sqlite", "text without a final newline", "a damaged line"])
def test_an_out_that_is_not_formc_jsonl_is_refused_untouched(tmp_path, content):
    inbox = inbox_of(tmp_path, 1)
    out = tmp_path / "results.jsonl"
    if content == "sqlite":
        _sqlite_file(out)
    elif content == "a damaged line":
        assert formc("batch", str(inbox), "--out", str(out), "--workers", "1").returncode == 0
        good = out.read_bytes()
        out.write_bytes(good + b'{"schema_version": 2, "submission": tr\n' + good)
    else:
        out.write_text("TPS 7 dihitung ulang\nbesok pagi")
    before = out.read_bytes()
    run = formc("batch", str(inbox), "--out", str(out), "--workers", "1")
    _one_clear_error(run, "is not a formc record", "nothing in it was changed")
    if content == "a damaged line":
        assert "line 2 of" in run.stderr
    assert out.read_bytes() == before


def test_an_empty_out_is_used_and_a_torn_record_is_read_again(tmp_path):
    inbox = inbox_of(tmp_path, 2)
    out = tmp_path / "results.jsonl"
    out.write_bytes(b"")
    assert formc("batch", str(inbox), "--out", str(out), "--workers", "1").returncode == 0
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:-40])  # a kill in the middle of the second write
    run = formc("batch", str(inbox), "--out", str(out), "--workers", "1")
    assert run.returncode == 0 and "1 submissions read" in run.stderr and "1 already in" in run.stderr, run.stderr
    assert sorted(r.submission for r in records(out)) == ["tps-0", "tps-1"]


def test_a_second_batch_on_the_same_out_is_refused_while_the_first_runs(tmp_path):
    inbox = inbox_of(tmp_path, 32)  # enough for the first to be reading still when the second starts, on busy cores too
    out = tmp_path / "results.jsonl"
    first = _start(inbox, out, "--workers", "1")
    wait_for_lines(out, 1)
    second = formc("batch", str(inbox), "--out", str(out), "--workers", "1")
    assert first.poll() is None, "the first batch ended before the second started"
    _one_clear_error(second, "being written by another formc batch")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert sorted(r.submission for r in records(out)) == sorted(f"tps-{i}" for i in range(32))


def _file_size_limit(limit: int):
    def limit_writes() -> None:  # in the child: a write past `limit` bytes fails with EFBIG, as a full disk would
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


def test_a_failed_write_keeps_the_records_before_it_and_the_run_resumes(tmp_path):
    inbox = inbox_of(tmp_path, 3)
    out = tmp_path / "results.jsonl"
    one = formc("batch", str(inbox / "tps-0"), "--out", str(tmp_path / "one.jsonl"), "--workers", "1")
    record_bytes = (tmp_path / "one.jsonl").stat().st_size
    full = formc("batch", str(inbox), "--out", str(out), "--workers", "1",
                 preexec_fn=_file_size_limit(record_bytes * 3 // 2))
    assert one.returncode == 0
    _one_clear_error(full, f"writing {out} failed", "File too large", "run the same command again")
    assert len(records(out)) == 1 and out.read_bytes().endswith(b"\n")  # one whole record, no part of the next
    again = formc("batch", str(inbox), "--out", str(out), "--workers", "1")
    assert again.returncode == 0 and "2 submissions read" in again.stderr, again.stderr
    assert sorted(r.submission for r in records(out)) == ["tps-0", "tps-1", "tps-2"]


def test_an_out_that_cannot_be_created_is_one_message(tmp_path):
    (tmp_path / "a-file").write_text("x")
    run = formc("batch", str(inbox_of(tmp_path, 1)), "--out", str(tmp_path / "a-file" / "results.jsonl"))
    _one_clear_error(run, "cannot write", "a-file")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_batch_with_its_summary_and_the_resume_command(tmp_path, sig, code):
    inbox = inbox_of(tmp_path, 8)
    out = tmp_path / "results.jsonl"
    batch = _start(inbox, out, "--workers", "2")
    wait_for_lines(out, 1)
    if sig == signal.SIGINT:
        os.killpg(batch.pid, sig)  # Ctrl-C reaches the whole process group, the reading processes too
    else:
        batch.send_signal(sig)  # `kill`, a service manager: the batch process only
    stderr = batch.communicate(timeout=120)[1]
    assert batch.returncode == code, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr
    assert f"stopped by {sig.name}" in stderr and f"run the same command again: formc batch {inbox} --out {out}" in stderr
    written = [SubmissionResult.model_validate_json(line) for line in out.read_text().splitlines()]  # whole records
    assert f"{len(written)} submissions read" in stderr and f"{8 - len(written)} submission(s) not read yet" in stderr
    again = formc("batch", str(inbox), "--out", str(out), "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert sorted(r.submission for r in records(out)) == [f"tps-{i}" for i in range(8)]


def test_preview_that_cannot_write_its_file_fails(tmp_path):
    (tmp_path / "a-file").write_text("x")
    run = formc("preview", str(SAMPLE / "page-1.jpg"), "--out", str(tmp_path / "a-file" / "p.png"))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "a-file" / "p.png").exists()


def test_previews_that_cannot_be_written_stop_the_batch_with_one_message(tmp_path):
    (tmp_path / "a-file").write_text("x")
    run = formc("batch", str(inbox_of(tmp_path, 2)), "--out", str(tmp_path / "r.jsonl"), "--workers", "2",
                "--previews", str(tmp_path / "a-file" / "previews"))
    _one_clear_error(run, "Not a directory", "run the same command again")


def test_a_database_in_a_new_folder_is_made_and_one_that_cannot_be_is_one_message(tmp_path):
    inbox = inbox_of(tmp_path, 1)
    made = formc("batch", str(inbox), "--out", str(tmp_path / "r.jsonl"), "--db", f"sqlite:///{tmp_path}/new/r.db")
    assert made.returncode == 0 and (tmp_path / "new" / "r.db").is_file(), made.stderr
    (tmp_path / "a-file").write_text("x")
    run = formc("batch", str(inbox), "--out", str(tmp_path / "s.jsonl"), "--db", f"sqlite:///{tmp_path}/a-file/r.db")
    _one_clear_error(run, "cannot open the results database")

"""The local pool of reading processes: it dies with its batch and outlives the death of its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocr.run.inputs import find_submissions
from ocr.run.local import ProcessPool
from tests.run.test_batch import REPO, inbox_of, wait_for_lines


def _children(pid: int) -> set[int]:
    """Every process `pid` started (Linux /proc), whatever thread started it."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker processes through Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_reading_processes_end_with_their_batch(tmp_path, sig):
    inbox = inbox_of(tmp_path, 6)
    out = tmp_path / "results.jsonl"
    batch = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "batch", str(inbox), "--out", str(out),
                              "--workers", "2"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_lines(out, 1)
    workers = _children(batch.pid)
    assert len(workers) >= 2, "the pool's processes were not found"
    batch.send_signal(sig)  # the batch process only, as the OOM killer or a `kill` would
    # SIGTERM stops the batch cleanly (128 + 15, as a shell reports it); SIGKILL ends it where it is.
    assert batch.wait(timeout=120) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert [pid for pid in workers if _alive(pid)] == []


def test_a_worker_killed_between_reads_costs_no_submission(tmp_path):
    inbox = inbox_of(tmp_path, 8)  # more than the pool holds in flight: some are handed to it after the kill
    engine = ProcessPool(2)
    read = engine.read(find_submissions(inbox).submissions, frozenset())
    results = [next(read)]
    for process in list(engine.pool._processes.values()):  # the OOM killer, between two waits of the batch
        os.kill(process.pid, signal.SIGKILL)
    time.sleep(2)  # the pool sees it broken before the batch hands it the next submission
    results += list(read)
    assert sorted(sub.submission for sub, _ in results) == [f"tps-{i}" for i in range(8)]
    assert all(result.status in ("ok", "review") for _, result in results)

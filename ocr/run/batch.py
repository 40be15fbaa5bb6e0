"""The main job: read many submissions into a JSONL file (and a database), resumably, on any engine.

`run_batch` is the one driver and the only writer: one JSONL line per submission, written whole and
flushed as soon as it is read, so `kill -9` loses nothing already written; a run over the same
output skips every (submission, photos_key) already there, and saves in the database any record
an interrupted run wrote to the JSONL only. Where the reading happens is an `Engine`: this
process (`InProcess`, `--workers 1`), a pool of processes (`ProcessPool`), or the `formc worker`s
of a Celery cluster (`ocr/run/cluster.py`).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from ocr.record import SubmissionResult
from ocr.run.inputs import SubmissionInput
from ocr.run.twins import Twins, flagged

Done = frozenset[tuple[str, str]]  # (submission, photos_key) of every record already in the JSONL


class Engine(Protocol):
    """Where submissions are read. `read` yields each submission with its result (None: in `done`) as it finishes,
    in any order; `saves_results`: its workers save each result in the database themselves."""

    saves_results: bool

    def resume(self, out: Path, store) -> dict[tuple[str, str], str]: ...

    def read(self, submissions: list[SubmissionInput], done: Done
             ) -> Iterator[tuple[SubmissionInput, SubmissionResult | None]]: ...


@dataclass
class BatchSummary:
    by_status: Counter = field(default_factory=Counter)
    submissions: int = 0  # read in this run
    photos: int = 0  # read in this run
    already_done: int = 0  # submissions found in the output of an earlier run
    seconds: float = 0.0

    def add(self, sub: SubmissionInput, result: SubmissionResult | None) -> None:
        """Counts a finished submission (None: found done by an earlier run)."""
        if result is None:
            self.already_done += 1
            return
        self.submissions += 1
        self.photos += len(sub.photos)
        self.by_status[result.status] += 1

    @property
    def photos_per_s(self) -> float:
        return self.photos / self.seconds if self.seconds else 0.0


def done_records(out: Path) -> dict[tuple[str, str], str]:
    """(submission, photos_key) -> JSONL line of every whole record in `out`; a torn last line is cut off."""
    if not out.exists():
        return {}
    data = out.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):  # the write a kill interrupted: the submission is read again
        with out.open("r+b") as f:
            f.truncate(len(whole))
    records = {}
    for line in whole.decode().splitlines():
        if line.strip():
            r = json.loads(line)
            records[(r["submission"], r["photos_key"])] = line
    return records


def append_record(fd: int, result: SubmissionResult) -> None:
    data = (result.model_dump_json() + "\n").encode()
    while data:  # one record, written whole before the next
        data = data[os.write(fd, data):]


def resume(out: Path, store=None) -> dict[tuple[str, str], str]:
    """`done_records(out)`, each of them also saved in `store` (a ResultStore) where it is missing there."""
    done = done_records(out)
    if store is not None:  # a kill between the JSONL line and the database row: the row is written now
        stored = store.keys()
        for line in done.values():
            result = SubmissionResult.model_validate_json(line)
            # A twin's flag too: the cluster's workers saved it unflagged, and a kill may have come before the driver.
            if (result.submission, result.photos_key) not in stored or flagged(result):
                store.save(result)
    return done


def run_batch(submissions: list[SubmissionInput], out: Path, engine: Engine, store=None,
              on_result: Callable[[SubmissionInput, SubmissionResult | None], None] = lambda s, r: None
              ) -> BatchSummary:
    """Read every submission not already in `out` on `engine`; append each result to `out` (and save it in
    `store`, a ResultStore, unless the engine's workers do) as it comes. `on_result` sees each finished
    submission (None: it was already done), for a progress bar."""
    done = engine.resume(out, store)
    twins = Twins(done)  # identical photos under a later name are flagged (ocr/run/twins.py)
    summary = BatchSummary()
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for sub, read in engine.read(submissions, frozenset(done)):
            result = twins.check(read) if read is not None else None
            if result is not None:
                append_record(fd, result)
                if store is not None and (result is not read or not engine.saves_results):  # a flag the workers lack
                    store.save(result)
            summary.add(sub, result)
            on_result(sub, result)
    finally:
        os.close(fd)
        summary.seconds = time.perf_counter() - start
    return summary

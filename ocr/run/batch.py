"""The main job: read many submissions into a JSONL file (and a database), resumably, on any engine.

`run_batch` is the one driver and the only writer: one JSONL line per submission, written whole and
flushed as soon as it is read, so `kill -9` loses nothing already written; a run over the same
output skips every (submission, photos_key) already there, and saves in the database any record
an interrupted run wrote to the JSONL only. The output is the batch's own (`Output`: formc JSONL or refused, locked
for one run, never left with part of a record), and SIGINT / SIGTERM end a run between two records with its
summary (`stopping_on_signals`). Where the reading happens is an `Engine`: this
process (`InProcess`, `--workers 1`), a pool of processes (`ProcessPool`), or the `formc worker`s
of a Celery cluster (`ocr/run/cluster.py`).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import time
from collections import Counter
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from ocr.db.regions import official_desa
from ocr.reader.reasons import Refusal
from ocr.record import SUBMISSION_STATUSES, SubmissionResult, error_result
from ocr.run.inputs import SubmissionInput
from ocr.run.places import unknown_places
from ocr.run.twins import Twins, flagged

Done = frozenset[tuple[str, str]]  # (submission, photos_key) of every record already in the JSONL


class Engine(Protocol):
    """Where submissions are read. `read` yields each submission with its result (None: in `done`) as it finishes,
    in any order; `saves_results`: its workers save each result in the database themselves."""

    saves_results: bool

    def save_missing(self, done: dict[tuple[str, str], str], store) -> None: ...

    def read(self, submissions: list[SubmissionInput], done: Done
             ) -> Iterator[tuple[SubmissionInput, SubmissionResult | None]]: ...


@dataclass
class BatchSummary:
    by_status: Counter = field(default_factory=Counter)
    submissions: int = 0  # read in this run
    photos: int = 0  # read in this run
    already_done: int = 0  # submissions found in the output of an earlier run
    seconds: float = 0.0
    stopped_by: int | None = None  # the signal that stopped the run before its end

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

    def line(self, out: Path) -> str:
        """The run in one line, as `formc batch` ends."""
        counts = ", ".join(f"{status} {self.by_status[status]}" for status in SUBMISSION_STATUSES)
        return (f"{self.submissions} submissions read ({counts}); {self.already_done} already in {out}; "
                f"{self.photos} photos in {self.seconds:.1f} s = {self.photos_per_s:.2f} photos/s")


class OutputError(Exception):
    """What the batch writes (its JSONL, its previews) cannot be written; the message says why and what was kept."""


RECORD_START = b'{"schema_version":'  # how every record's line begins (SubmissionResult's first field)


def _record_key(line: bytes) -> tuple[str, str] | None:
    """(submission, photos_key) of a JSONL line that is a formc record; None for anything else."""
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("submission", "photos_key")):
        return None
    return record["submission"], record["photos_key"]


class Output:
    """The batch's JSONL file, held for one run. Opening it refuses a file that is not formc JSONL (before anything in
    it is cut) and one another batch holds (an exclusive lock for the run); a record is appended whole or not at all.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> Output:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc
        try:
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                raise OutputError(f"{self.path} is not a regular file; --out must be a JSONL file")
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self.__exit__()
            raise OutputError(f"{self.path} is being written by another formc batch; wait for it to end, or choose "
                              "another --out") from exc
        except OutputError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # and with it the lock

    def records(self) -> dict[tuple[str, str], str]:
        """(submission, photos_key) -> line of every record in the file. Refuses a file with any other line; a torn
        record at its end (a kill mid-write) is cut off, and its submission is read again."""
        data = self.path.read_bytes()
        whole = data.rfind(b"\n") + 1
        records = {}
        for number, line in enumerate(data[:whole].split(b"\n")[:-1], 1):
            key = _record_key(line)
            if key is None and line.strip():
                raise self._not_ours(f"line {number}")
            if key is not None:
                records[key] = line.decode()
        tail = data[whole:]
        if tail and not (RECORD_START.startswith(tail) or tail.startswith(RECORD_START)):
            raise self._not_ours("the last line")
        if tail:
            os.ftruncate(self.fd, whole)
        return records

    def _not_ours(self, line: str) -> OutputError:
        return OutputError(f"{line} of {self.path} is not a formc record; --out must be absent, empty or the JSONL of "
                           "a formc batch (nothing in it was changed)")

    def append(self, result: SubmissionResult) -> None:
        """Writes `result`'s line whole; on a failed write (disk full, I/O error) the part written is cut off again,
        so the file stays records only, and the failure is an OutputError."""
        data = memoryview((result.model_dump_json() + "\n").encode())
        size = os.fstat(self.fd).st_size
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except BaseException as exc:  # a full disk, or a signal between two writes: no part of a record stays
            os.ftruncate(self.fd, size)
            if not isinstance(exc, OSError):
                raise
            raise OutputError(f"writing {self.path} failed: {exc.strerror}; the records before this one are kept, "
                              "run the same command again to read the rest") from exc


class Stopped(BaseException):
    """SIGINT or SIGTERM reached the batch (a BaseException: no `except Exception` on the way keeps it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """While the batch runs, SIGINT (Ctrl-C) and SIGTERM raise `Stopped` in this, the main, thread: `run_batch` ends
    between two records with its summary. The handlers before are put back after."""
    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    before = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def save_missing(done: dict[tuple[str, str], str], store=None) -> None:
    """Saves in `store` (a ResultStore) every record of `done` (lines of the JSONL) it does not hold: a kill between
    a JSONL line and its database row leaves the row to write now."""
    if store is None:
        return
    stored = store.keys()
    for line in done.values():
        result = SubmissionResult.model_validate_json(line)
        # A twin's flag too: the cluster's workers saved it unflagged, and a kill may have come before the driver.
        if (result.submission, result.photos_key) not in stored or flagged(result):
            store.save(result)


def refused_result(sub: SubmissionInput, refusal: Refusal) -> SubmissionResult:
    """The record of a submission not read because of where it says it belongs (its photos hashed, so that a re-run
    knows it)."""
    hashes = [photo.sha256 for photo in (ref.load() for ref in sub.photos)]
    return error_result(sub.submission, sub.sources, hashes, refusal.code, refusal.message, status="rejected")


def run_batch(submissions: list[SubmissionInput], out: Path, engine: Engine, store=None,
              on_result: Callable[[SubmissionInput, SubmissionResult | None], None] = lambda s, r: None,
              known_desa: Callable[[set[str]], set[str]] = official_desa) -> BatchSummary:
    """Read every submission not already in `out` on `engine`; append each result to `out` (and save it in
    `store`, a ResultStore, unless the engine's workers do) as it comes. `on_result` sees each finished
    submission (None: it was already done), for a progress bar. A submission whose place cannot be read or names a
    desa `known_desa` (the region registry) lacks is not read: its record is `rejected` with the reason. A `Stopped`
    ends the run early, with its summary; an `OutputError` (and the store's `StoreUnavailable`) end it with what was
    written kept valid."""
    summary = BatchSummary()
    start = time.perf_counter()
    with Output(out) as output:
        try:
            done = output.records()
            engine.save_missing(done, store)
            twins = Twins(done)  # identical photos under a later name are flagged (ocr/run/twins.py)
            refused = unknown_places({s.submission: s.place for s in submissions if s.place is not None}, known_desa)
            for sub in (s for s in submissions if s.submission in refused):
                result = refused_result(sub, refused[sub.submission])
                result = None if (result.submission, result.photos_key) in done else result
                if result is not None:
                    output.append(result)
                    if store is not None:
                        store.save(result)
                summary.add(sub, result)
                on_result(sub, result)
            submissions = [s for s in submissions if s.submission not in refused]
            with closing(engine.read(submissions, frozenset(done))) as finished:
                for sub, read in finished:
                    result = twins.check(read) if read is not None else None
                    if result is not None:
                        output.append(result)
                        if store is not None and (result is not read or not engine.saves_results):  # a flag the workers lack
                            store.save(result)
                    summary.add(sub, result)
                    on_result(sub, result)
        except Stopped as stop:
            summary.stopped_by = stop.signum
        except OSError as exc:  # a preview that cannot be written (read_one lets it through): so would the next one
            raise OutputError(f"{exc}; the records before it are kept in {out}, run the same command again to read "
                              "the rest") from exc
        finally:
            summary.seconds = time.perf_counter() - start
    return summary

"""The main job: read many submissions in parallel into a JSONL file (and a database), resumably.

`read_one` is the one code path from a submission's photo files to its `SubmissionResult`; it
never raises (a bad file is a refused page, a bug is an `error` record). `run_batch` fans it out
over processes and is the only writer: one JSONL line per submission, written whole and flushed
as soon as it is read, so `kill -9` loses nothing already written; a run over the same output
skips every (submission, photos_key) already there. A worker that dies (segfault, out of memory)
takes its in-flight submissions with it: they are retried one at a time, and one that kills a
worker again is recorded as `error: worker_crashed`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ocr.reader.digits import DigitClassifier
from ocr.run.inputs import MAX_PHOTO_BYTES, SubmissionInput
from ocr.pipeline import SubmissionRead, read_submission
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.record import SubmissionResult, error_result, photos_key, submission_result

IN_FLIGHT_PER_WORKER = 3  # enough queued work to keep a worker busy, little enough to retry after a crash


@dataclass(frozen=True)
class ReadSettings:
    template_id: str | None = None  # force the template: pages of another are refused as wrong_page
    previews: Path | None = None  # write each photo's preview PNG under previews/<submission>/


def load_photo(ref) -> tuple[bytes | Refusal, str]:
    """A photo's bytes and their sha256, or the refusal that says why the file cannot be read."""
    try:
        size = ref.size()
        if size > MAX_PHOTO_BYTES:
            return Refusal(ReasonCode.IMAGE_TOO_LARGE, f"{ref.source}: {size / 2**20:.0f} MB; a photo of a form is "
                           f"under {MAX_PHOTO_BYTES // 2**20} MB: send the camera's original JPEG"), ""
        data = ref.read_bytes()
    except (OSError, KeyError) as exc:  # KeyError: a zip member that vanished
        return Refusal(ReasonCode.FILE_UNREADABLE, f"{ref.source}: cannot be read ({exc})"), ""
    return data, hashlib.sha256(data).hexdigest()


def read_one(sub: SubmissionInput, settings: ReadSettings, classifier: DigitClassifier,
             done: frozenset[tuple[str, str]] = frozenset(), preview_out: Path | None = None,
             on_read: Callable[[SubmissionRead, SubmissionResult], None] | None = None) -> SubmissionResult | None:
    """Read one submission from its files; None when (submission, photos_key) is in `done`. Previews go to
    `preview_out` (see `write_previews`), by default `settings.previews/<submission>/` when that is set.
    `on_read` sees the read with its photos kept and the result (the review app draws its images there)."""
    if preview_out is None and settings.previews is not None:
        preview_out = settings.previews / sub.submission
    loaded = [load_photo(ref) for ref in sub.photos]
    hashes = [sha for _, sha in loaded]
    try:
        if (sub.submission, photos_key(hashes, [ref.source for ref in sub.photos])) in done:
            return None
        read = read_submission([(ref.source, data) for ref, (data, _) in zip(sub.photos, loaded)],
                               template_id=settings.template_id, classifier=classifier,
                               keep_photos=preview_out is not None or on_read is not None)
        result = submission_result(sub.submission, read, hashes)
        if preview_out is not None:
            from ocr.draw.preview import write_previews  # drawing libraries load only where previews are made
            write_previews(read, result, preview_out)
        if on_read is not None:
            on_read(read, result)
        return result
    except Exception as exc:  # a bug must cost one record, not the batch
        return error_result(sub.submission, [r.source for r in sub.photos], hashes, ReasonCode.INTERNAL_ERROR,
                            f"{type(exc).__name__}: {exc}")


_worker: dict = {}


def crashed_result(sub: SubmissionInput, hashes: list[str]) -> SubmissionResult:
    """The record of a submission whose reading killed the worker process twice: not read a third time."""
    return error_result(sub.submission, [r.source for r in sub.photos], hashes, ReasonCode.WORKER_CRASHED,
                        "reading these photos killed the worker process twice (out of memory or a crash in a library)")


def _init_worker(settings: ReadSettings, done: frozenset[tuple[str, str]]) -> None:
    _worker.update(settings=settings, done=done, classifier=DigitClassifier(threads=1))
    gc.freeze()  # modules, classifier and `done` (a tuple per record of a resumed batch) live as long as the process


def _read_in_worker(sub: SubmissionInput) -> SubmissionResult | None:
    return read_one(sub, _worker["settings"], _worker["classifier"], _worker["done"])


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
            if result.photos_key not in stored:
                store.save(result)
    return done


def run_batch(submissions: list[SubmissionInput], out: Path, workers: int, settings: ReadSettings = ReadSettings(),
              store=None, on_result: Callable[[SubmissionInput, SubmissionResult | None], None] = lambda s, r: None
              ) -> BatchSummary:
    """Read every submission not already in `out` with `workers` processes; append each result to `out`
    (and save it in `store`, a ResultStore) as it comes. `on_result` sees each finished submission
    (None: it was already done), for a progress bar."""
    done = resume(out, store)
    summary = BatchSummary()
    start = time.perf_counter()
    queue = deque(submissions)
    suspects: deque[SubmissionInput] = deque()  # in flight when a worker died: retried one at a time
    context = multiprocessing.get_context("spawn")  # no forked copies of a parent's threads or open files
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    done_keys = frozenset(done)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(settings, done_keys))

    pool = new_pool()
    pending: dict[Future, tuple[SubmissionInput, bool]] = {}  # future -> (submission, run alone)
    try:
        while queue or suspects or pending:
            if suspects and not pending:
                sub = suspects.popleft()
                pending[pool.submit(_read_in_worker, sub)] = (sub, True)
            while not suspects and queue and len(pending) < workers * IN_FLIGHT_PER_WORKER:
                sub = queue.popleft()
                pending[pool.submit(_read_in_worker, sub)] = (sub, False)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                sub, alone = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    if alone:
                        hashes = [sha for _, sha in map(load_photo, sub.photos)]  # its own key, not every crash's
                        result = crashed_result(sub, hashes)
                    else:
                        suspects.append(sub)
                        continue
                if result is not None:
                    append_record(fd, result)
                    if store is not None:
                        store.save(result)
                summary.add(sub, result)
                on_result(sub, result)
            if broken:
                suspects.extend(sub for sub, _ in pending.values())
                pending.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(fd)
        summary.seconds = time.perf_counter() - start
    return summary

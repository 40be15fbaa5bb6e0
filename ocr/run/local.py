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
import json
import logging
import multiprocessing
import os
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ocr import LOG_FORMAT
from ocr.pipeline import ReaderSettings, classifier, read_submission, read_submission_and_photos
from ocr.reader.reasons import ReasonCode
from ocr.record import SubmissionResult, error_result, photos_key
from ocr.run.inputs import SubmissionInput
from ocr.templates.catalog import load_templates
from ocr.templates.model import FormTemplate

IN_FLIGHT_PER_WORKER = 3  # enough queued work to keep a worker busy, little enough to retry after a crash
log = logging.getLogger(__name__)
Drawer = Callable[[SubmissionResult, tuple[FormTemplate, ...], list[np.ndarray | None]], None]


@dataclass(frozen=True)
class BatchSettings:
    reader: ReaderSettings = ReaderSettings()
    previews: Path | None = None  # write each photo's preview PNG under previews/<submission>/


def read_one(sub: SubmissionInput, templates: tuple[FormTemplate, ...], settings: BatchSettings,
             done: frozenset[tuple[str, str]] = frozenset(), preview_out: Path | None = None,
             on_read: Drawer | None = None) -> SubmissionResult | None:
    """Read one submission from its files through the door; None when (submission, photos_key) is in `done`.
    Previews go to `preview_out` (see `write_previews`), by default `settings.previews/<submission>/` when that is
    set. `on_read` draws from the result, the templates and the decoded photos (the review app's images)."""
    if preview_out is None and settings.previews is not None:
        preview_out = settings.previews / sub.submission
    photos = [ref.load() for ref in sub.photos]
    if (sub.submission, photos_key([p.sha256 for p in photos], sub.sources)) in done:
        return None
    if preview_out is None and on_read is None:
        return read_submission(photos, templates, settings.reader, sub.submission)
    result, grays = read_submission_and_photos(photos, templates, settings.reader, sub.submission)
    try:
        if preview_out is not None:
            from ocr.draw.preview import write_previews  # drawing libraries load only where previews are made

            write_previews(result, templates, grays, preview_out)
        if on_read is not None:
            on_read(result, templates, grays)
    except Exception as exc:  # a bug must cost one record, not the batch
        log.exception("drawing submission %r failed", sub.submission)
        return error_result(sub.submission, sub.sources, [p.sha256 for p in photos], ReasonCode.INTERNAL_ERROR,
                            f"{type(exc).__name__}: {exc} (traceback in the log)")
    return result


_worker: dict = {}


def crashed_result(sub: SubmissionInput, hashes: list[str]) -> SubmissionResult:
    """The record of a submission whose reading killed the worker process twice: not read a third time."""
    return error_result(sub.submission, sub.sources, hashes, ReasonCode.WORKER_CRASHED,
                        "reading these photos killed the worker process twice (out of memory or a crash in a library)")


def _init_worker(settings: BatchSettings, done: frozenset[tuple[str, str]]) -> None:
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    _worker.update(settings=settings, done=done, templates=tuple(load_templates().values()))
    classifier(settings.reader.threads)  # loaded before the freeze below
    gc.freeze()  # modules, templates and `done` (a tuple per record of a resumed batch) live as long as the process


def _read_in_worker(sub: SubmissionInput) -> SubmissionResult | None:
    return read_one(sub, _worker["templates"], _worker["settings"], _worker["done"])


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


class _Pool:
    """The reading processes of one batch: submissions in flight, and the ones to retry alone after a crash."""

    def __init__(self, workers: int, settings: BatchSettings, done: frozenset[tuple[str, str]]) -> None:
        self.workers, self.settings, self.done = workers, settings, done
        self.pending: dict[Future, tuple[SubmissionInput, bool]] = {}  # future -> (submission, read alone)
        self.suspects: deque[SubmissionInput] = deque()  # in flight when a worker died: retried one at a time
        self.pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # no forked copies of a parent's threads or open files
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self.settings, self.done))

    def fill(self, queue: deque[SubmissionInput]) -> None:
        if self.suspects and not self.pending:
            sub = self.suspects.popleft()
            self.pending[self.pool.submit(_read_in_worker, sub)] = (sub, True)
        while not self.suspects and queue and len(self.pending) < self.workers * IN_FLIGHT_PER_WORKER:
            sub = queue.popleft()
            self.pending[self.pool.submit(_read_in_worker, sub)] = (sub, False)

    def finished(self) -> list[tuple[SubmissionInput, SubmissionResult | None]]:
        """Waits for at least one submission; those finished, with their results (None: done by an earlier run).
        A worker that died takes its pool down: what was in flight is retried, one at a time, in a new pool."""
        done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        out, broken = [], False
        for future in done:
            sub, alone = self.pending.pop(future)
            try:
                out.append((sub, future.result()))
            except BrokenProcessPool:
                broken = True
                if alone:  # its own key, not every crash's
                    out.append((sub, crashed_result(sub, [ref.load().sha256 for ref in sub.photos])))
                else:
                    self.suspects.append(sub)
        if broken:
            log.warning("a reading process died; %d submission(s) in flight are read again one at a time",
                        len(self.pending) + len(self.suspects))
            self.suspects.extend(sub for sub, _ in self.pending.values())
            self.pending.clear()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new()
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_batch(submissions: list[SubmissionInput], out: Path, workers: int, settings: BatchSettings = BatchSettings(),
              store=None, on_result: Callable[[SubmissionInput, SubmissionResult | None], None] = lambda s, r: None
              ) -> BatchSummary:
    """Read every submission not already in `out` with `workers` processes; append each result to `out`
    (and save it in `store`, a ResultStore) as it comes. `on_result` sees each finished submission
    (None: it was already done), for a progress bar."""
    done = resume(out, store)
    summary = BatchSummary()
    start = time.perf_counter()
    queue = deque(submissions)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pool = _Pool(workers, settings, frozenset(done))
    try:
        while queue or pool.suspects or pool.pending:
            pool.fill(queue)
            for sub, result in pool.finished():
                if result is not None:
                    append_record(fd, result)
                    if store is not None:
                        store.save(result)
                summary.add(sub, result)
                on_result(sub, result)
    finally:
        pool.close()
        os.close(fd)
        summary.seconds = time.perf_counter() - start
    return summary

"""Reading on this machine: `read_one` (a submission's files through the door) and the local engines.

`read_one` is the one code path from a submission's photo files to its `SubmissionResult`; it
never raises (a bad file is a refused page, a bug is an `error` record). `InProcess` reads in this
process, `ProcessPool` in worker processes; `ocr/run/batch.py run_batch` drives either.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ocr import LOG_FORMAT
from ocr.pipeline import ReaderSettings, classifier, read_submission, read_submission_and_photos
from ocr.reader.reasons import ReasonCode
from ocr.record import SubmissionResult, TpsIdentity, error_result, photos_key
from ocr.run.batch import Done, save_missing
from ocr.run.inputs import SubmissionInput, submission_folder
from ocr.templates.catalog import load_templates
from ocr.templates.model import FormTemplate

IN_FLIGHT_PER_WORKER = 3  # enough queued work to keep a worker busy, little enough to retry after a crash
log = logging.getLogger(__name__)
Drawer = Callable[[SubmissionResult, tuple[FormTemplate, ...], list[np.ndarray | None]], None]


@dataclass(frozen=True)
class BatchSettings:
    reader: ReaderSettings = ReaderSettings()
    previews: Path | None = None  # write each photo's preview PNG under previews/<submission>/
    store: Path | None = None  # keep every photo in this photo store (by content), for the review app


def read_one(sub: SubmissionInput, templates: tuple[FormTemplate, ...], settings: BatchSettings,
             done: frozenset[tuple[str, str]] = frozenset(), preview_out: Path | None = None,
             on_read: Drawer | None = None) -> SubmissionResult | None:
    """Read one submission from its files through the door; None when (submission, photos_key) is in `done`.
    Previews go to `preview_out` (see `write_previews`), by default `settings.previews/<submission>/` when that is
    set; the photos go into the photo store `settings.store` when that is set. `on_read` draws from the result, the
    templates and the decoded photos (the review app's images). The result carries the submission's place."""
    result = _read_one(sub, templates, settings, done, preview_out, on_read)
    if result is None or not isinstance(sub.place, TpsIdentity):
        return result
    return result.model_copy(update={"place": sub.place})


def _read_one(sub: SubmissionInput, templates: tuple[FormTemplate, ...], settings: BatchSettings,
              done: frozenset[tuple[str, str]], preview_out: Path | None, on_read: Drawer | None
              ) -> SubmissionResult | None:
    as_folder = preview_out is None  # the batch's previews: always a folder, even for a submission named `y.png`
    if preview_out is None and settings.previews is not None:
        preview_out = submission_folder(settings.previews, sub.submission)
    try:
        photos = [ref.load() for ref in sub.photos]
    except Exception as exc:  # load refuses what it knows; anything else must cost one record, not the batch
        log.exception("loading submission %r failed", sub.submission)
        return error_result(sub.submission, sub.sources, [""] * len(sub.photos), ReasonCode.INTERNAL_ERROR,
                            f"{type(exc).__name__}: {exc} (traceback in the log)")
    if (sub.submission, photos_key([p.sha256 for p in photos], sub.sources)) in done:
        return None
    if settings.store is not None:
        from ocr.run.photo_store import PhotoStore  # drawing libraries load only where photos are kept for review

        keep = PhotoStore(settings.store)
        for photo in photos:
            if isinstance(photo.data, bytes):
                keep.put(photo.data, photo.sha256)
    if preview_out is None and on_read is None:
        return read_submission(photos, templates, settings.reader, sub.submission)
    result, grays = read_submission_and_photos(photos, templates, settings.reader, sub.submission)
    try:
        if preview_out is not None:
            from ocr.draw.preview import write_previews  # drawing libraries load only where previews are made

            write_previews(result, templates, grays, preview_out, as_folder=as_folder or None)
        if on_read is not None:
            on_read(result, templates, grays)
    except OSError:
        raise  # a full disk or a bad folder fails every submission alike: the batch stops with one message
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


def _exit_with_parent() -> None:
    """Ends this worker when the batch process ends, however it ends (kill -9 included): a pool's workers otherwise
    wait on their queue for ever. The parent's sentinel becomes ready when the parent is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(settings: BatchSettings, done: frozenset[tuple[str, str]]) -> None:
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the batch process stops us
    _exit_with_parent()
    # OpenCV otherwise runs a thread per core in every worker: the pool already has a process per core.
    cv2.setNumThreads(settings.reader.threads)
    _worker.update(settings=settings, done=done, templates=tuple(load_templates().values()))
    classifier(settings.reader.threads, settings.reader.model)  # loaded before the freeze below
    gc.freeze()  # modules, templates and `done` (a tuple per record of a resumed batch) live as long as the process


def _read_in_worker(sub: SubmissionInput) -> SubmissionResult | None:
    return read_one(sub, _worker["templates"], _worker["settings"], _worker["done"])


class InProcess:
    """Reads in this process, one submission after another (`--workers 1`): no pool to start, and a debugger or
    profiler sees the reading itself. A crash in a library ends the batch here (the pool survives one)."""

    saves_results = False

    def __init__(self, settings: BatchSettings = BatchSettings()) -> None:
        self.settings = settings
        self.templates = tuple(load_templates().values())

    def save_missing(self, done: dict[tuple[str, str], str], store) -> None:
        save_missing(done, store)

    def read(self, submissions: list[SubmissionInput], done: Done) -> Iterator[tuple[SubmissionInput,
                                                                                     SubmissionResult | None]]:
        for sub in submissions:
            yield sub, read_one(sub, self.templates, self.settings, done)


class ProcessPool:
    """Reads with `workers` processes. A worker that dies (segfault, out of memory) takes the pool down with the
    submissions in flight: they are read again one at a time in a new pool, and one that kills a worker again is
    recorded as `error: worker_crashed`."""

    saves_results = False

    def __init__(self, workers: int, settings: BatchSettings = BatchSettings()) -> None:
        self.workers, self.settings = workers, settings
        self.pending: dict[Future, tuple[SubmissionInput, bool]] = {}  # future -> (submission, read alone)
        self.suspects: deque[SubmissionInput] = deque()  # in flight when a worker died: retried one at a time
        self.refused = False  # the pool refused a submission: a worker died since the last wait

    def save_missing(self, done: dict[tuple[str, str], str], store) -> None:
        save_missing(done, store)

    def read(self, submissions: list[SubmissionInput], done: Done) -> Iterator[tuple[SubmissionInput,
                                                                                     SubmissionResult | None]]:
        queue = deque(submissions)
        self.pool = self._new(done)
        try:
            while queue or self.suspects or self.pending:
                self._fill(queue)
                yield from self._finished(done)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _new(self, done: Done) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # no forked copies of a parent's threads or open files
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self.settings, done))

    def _fill(self, queue: deque[SubmissionInput]) -> None:
        if self.suspects and not self.pending:
            self._submit(self.suspects.popleft(), True)
        while not self.suspects and queue and len(self.pending) < self.workers * IN_FLIGHT_PER_WORKER:
            self._submit(queue.popleft(), False)

    def _submit(self, sub: SubmissionInput, alone: bool) -> None:
        """Hands `sub` to the pool; a pool a worker's death broke since the last wait refuses it: then `sub` waits
        with the suspects, and `_finished` rebuilds the pool."""
        try:
            self.pending[self.pool.submit(_read_in_worker, sub)] = (sub, alone)
        except BrokenProcessPool:
            self.refused = True
            if alone:
                self.suspects.appendleft(sub)
            else:
                self.suspects.append(sub)

    def _finished(self, done: Done) -> list[tuple[SubmissionInput, SubmissionResult | None]]:
        """Waits for at least one submission; those finished, with their results."""
        finished = wait(self.pending, return_when=FIRST_COMPLETED)[0] if self.pending else set()
        out, broken, self.refused = [], self.refused, False
        for future in finished:
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
            self.pool = self._new(done)
        return out


def local_engine(workers: int, settings: BatchSettings = BatchSettings()) -> InProcess | ProcessPool:
    """`--workers 1` reads in this process; more, in a pool of processes."""
    return InProcess(settings) if workers == 1 else ProcessPool(workers, settings)

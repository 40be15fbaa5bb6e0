"""Uploads read in the background: a small thread pool runs `read_one`, the batch's code path, on stored photos.

The upload request returns at once with a job id; the job page polls until the result is saved
and then redirects to the submission. Threads suffice: decoding, alignment and the classifier run
in OpenCV, NumPy and onnxruntime, which release the GIL, so the server keeps answering meanwhile.
Jobs are kept in memory: after a restart an unfinished upload is simply uploaded again.
"""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ocr.batch import ReadSettings, read_one
from ocr.digits import DigitClassifier
from ocr.inputs import PhotoRef, SubmissionInput
from ocr.review import Reviews, User
from ocr.store import ResultStore
from ocr.web.photos import PhotoStore

KEEP_JOBS_S = 3600.0  # a finished job's page answers for an hour


@dataclass
class Job:
    owner: int
    submission: str
    started: float
    state: str = "reading"  # reading | done | failed
    submission_id: int | None = None
    finished: float | None = None
    error: str = ""


class Reader:
    def __init__(self, store: ResultStore, reviews: Reviews, photos: PhotoStore, workers: int = 1) -> None:
        self.store, self.reviews, self.photos = store, reviews, photos
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="formc-read")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._classifier: DigitClassifier | None = None

    def _classify(self) -> DigitClassifier:
        with self._lock:  # loaded once, on the first upload (onnxruntime sessions may be shared by threads)
            if self._classifier is None:
                self._classifier = DigitClassifier(threads=1)
            return self._classifier

    def submit(self, submission: str, photos: list[tuple[str, str]], user: User) -> str:
        """Reads the stored photos [(name, sha256)] as one submission; the job id."""
        job_id = secrets.token_urlsafe(16)
        with self._lock:
            now = time.time()
            for old in [k for k, j in self._jobs.items() if j.finished and now - j.finished > KEEP_JOBS_S]:
                del self._jobs[old]
            self._jobs[job_id] = Job(owner=user.id, submission=submission, started=now)
        self._pool.submit(self._run, job_id, submission, photos, user)
        return job_id

    def _run(self, job_id: str, submission: str, photos: list[tuple[str, str]], user: User) -> None:
        sub = SubmissionInput(submission, tuple(PhotoRef(name, str(self.photos.photo_path(sha))) for name, sha in photos))
        try:  # read_one never raises; the database may (unreachable, full disk)
            result = read_one(sub, ReadSettings(), self._classify(), on_read=self.photos.draw)
            self.store.save(result)
            submission_id = self.reviews.id_of(result.photos_key)
            self.reviews.record_upload(submission_id, user, [name for name, _ in photos])
            state, error = "done", ""
        except Exception as exc:
            submission_id, state, error = None, "failed", f"{type(exc).__name__}: {exc}"
        with self._lock:
            job = self._jobs[job_id]
            job.state, job.submission_id, job.error, job.finished = state, submission_id, error, time.time()

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

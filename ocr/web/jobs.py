"""Uploads read in the background, by `read_one`, the batch's code path, on the stored photos.

The upload request returns at once with a job id; the job page polls until the result is saved
and then redirects to the submission; while the job waits for a reading thread, the page says how many uploads
are ahead of it. Two readers:

- `LocalReader` (no broker: one laptop, no server to run): a small thread pool in the web process.
  Threads suffice: decoding, alignment and the classifier run in OpenCV, NumPy and onnxruntime,
  which release the GIL, so the server keeps answering meanwhile.
- `ClusterReader` (`formc serve --broker`): each upload is a task for the `formc worker`s, which
  read the photos from the shared store, draw the review images there, save the result and
  record the upload; the web process only asks the task's state.

Jobs are kept in memory: after a restart an unfinished upload is simply uploaded again (on the
cluster its result still arrives and lists under the uploader's recent uploads).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ocr.db.store import ResultStore
from ocr.record import TpsIdentity
from ocr.review.accounts import User
from ocr.review.workflow import Reviews
from ocr.run.inputs import PhotoRef, SubmissionInput
from ocr.run.local import BatchSettings, read_one
from ocr.run.photo_store import PhotoStore
from ocr.templates.catalog import load_templates

log = logging.getLogger(__name__)
KEEP_JOBS_S = 3600.0  # a finished job's page answers for an hour
GIVE_UP_JOBS_S = 24 * 3600.0  # a job nobody asked about for a day is forgotten (its result is saved all the same)


@dataclass
class Job:
    owner: int
    submission: str
    started: float
    state: str = "reading"  # reading | done | failed
    taken: bool = False  # a reading thread has it (LocalReader): no longer waits in the queue
    submission_id: int | None = None
    finished: float | None = None
    error: str = ""


class Reader:
    """The jobs of one web process; subclasses say how a job's photos are read."""

    def __init__(self, reviews: Reviews, photos: PhotoStore) -> None:
        self.reviews, self.photos = reviews, photos
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, submission: str, photos: list[tuple[str, str]], user: User, replaces: int | None = None,
               place: TpsIdentity | None = None) -> str:
        """Reads the stored photos [(name, sha256)] as one submission uploaded by `user`, at `place`; the job id.
        `replaces`: the stored submission this read completes (`ResultStore.save`)."""
        job_id = secrets.token_urlsafe(16)
        with self._lock:
            now = time.time()
            for old in [k for k, j in self._jobs.items()
                        if (j.finished and now - j.finished > KEEP_JOBS_S) or now - j.started > GIVE_UP_JOBS_S]:
                del self._jobs[old]
            self._jobs[job_id] = Job(owner=user.id, submission=submission, started=now)
        self._start(job_id, submission, photos, user, replaces, place)
        return job_id

    def _start(self, job_id: str, submission: str, photos: list[tuple[str, str]], user: User,
               replaces: int | None, place: TpsIdentity | None) -> None:
        raise NotImplementedError

    def _finish(self, job_id: str, submission_id: int | None, error: str = "") -> None:
        with self._lock:
            job = self._jobs[job_id]
            job.state = "done" if submission_id is not None else "failed"
            job.submission_id, job.error, job.finished = submission_id, error, time.time()

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def ahead(self, job_id: str) -> int:
        """How many uploads a job waits for before it is read; 0 where this process cannot tell (the cluster)."""
        return 0

    def close(self) -> None:
        pass


class LocalReader(Reader):
    def __init__(self, store: ResultStore, reviews: Reviews, photos: PhotoStore, workers: int = 1) -> None:
        super().__init__(reviews, photos)
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="formc-read")

    def _start(self, job_id: str, submission: str, photos: list[tuple[str, str]], user: User,
               replaces: int | None, place: TpsIdentity | None) -> None:
        self._pool.submit(self._run, job_id, SubmissionInput(submission, tuple(
            PhotoRef(name, str(self.photos.photo_path(sha)), sha256=sha) for name, sha in photos), place), user, replaces)

    def _run(self, job_id: str, sub: SubmissionInput, user: User, replaces: int | None) -> None:
        with self._lock:
            self._jobs[job_id].taken = True
        try:  # read_one never raises; the database may (unreachable, full disk)
            # The catalogue as it is now (cached): a template saved in the editor reads the next upload.
            result = read_one(sub, tuple(load_templates().values()), BatchSettings(), on_read=self.photos.draw)
            self.store.save(result, replaces)
            submission_id = self.reviews.id_of(result.submission, result.photos_key)
            self.reviews.record_upload(submission_id, user, sub.sources, job_id)
            self._finish(job_id, submission_id)
        except Exception:  # the details (a failed statement's SQL, paths) stay in the server's log, not on the page
            log.exception("upload job %s (%s) failed", job_id, sub.submission)
            self._finish(job_id, None, f"reading {job_id} did not finish")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def ahead(self, job_id: str) -> int:
        """The uploads sent earlier and not finished (waiting, or being read) while `job_id` waits for a thread."""
        with self._lock:
            if self._jobs[job_id].taken:
                return 0
            earlier = itertools.takewhile(lambda other: other != job_id, self._jobs)  # jobs are kept in sending order
            return sum(1 for other in earlier if self._jobs[other].state == "reading")


class ClusterReader(Reader):
    """Uploads read by the `formc worker`s on `broker`, whose --store is this app's photo store (the same path)."""

    def __init__(self, broker: str, reviews: Reviews, photos: PhotoStore) -> None:
        from ocr.run.cluster import make_app

        super().__init__(reviews, photos)
        self.app = make_app(broker)
        self._tasks: dict[str, tuple] = {}  # job id -> its AsyncResult, submission and photos_key, while reading

    def _start(self, job_id: str, submission: str, photos: list[tuple[str, str]], user: User,
               replaces: int | None, place: TpsIdentity | None) -> None:
        from ocr.run.cluster import OUTAGES, payload, send

        message = payload(submission, [[name, str(self.photos.photo_path(sha)), None] for name, sha in photos],
                          [sha for _, sha in photos], draw=True, place=place)
        message["upload"] = {"id": job_id, "user": [user.id, user.name, user.role], "replaces": replaces}
        for gone in [k for k in self._tasks if super().job(k) is None]:  # forgotten jobs
            del self._tasks[gone]
        try:
            self._tasks[job_id] = (send(self.app, message), submission, message["photos_key"])
        except OUTAGES as exc:
            self._finish(job_id, None, "the reading cluster's broker cannot be reached")
            log.warning("upload job %s: broker unreachable: %r", job_id, exc)

    def job(self, job_id: str) -> Job | None:
        from ocr.run.cluster import OUTAGES

        found = super().job(job_id)
        if found is None or job_id not in self._tasks:
            return found
        task, submission, key = self._tasks[job_id]
        try:
            if not task.ready():
                return found
            # Looked up even for a failed task: a worker that saved the result and then lost the broker reports one.
            submission_id = self.reviews.id_of(submission, key)
        except OUTAGES:  # broker or database away for a moment: still reading, as far as the page can tell
            return found
        if submission_id is not None:
            self._finish(job_id, submission_id)
        else:  # the workers gave up: the database stayed down
            self._finish(job_id, None, f"the reading task failed: {task.result!r}")
        if self._tasks.pop(job_id, None) is not None:  # two polls at once: one forgets the task
            task.forget()
        return super().job(job_id)

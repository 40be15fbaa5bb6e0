"""The distributed engine: `formc batch --engine celery` sends submissions to `formc worker` processes.

Messages carry only names and paths: the submitter copies every photo into the shared
content-addressed store (`PhotoStore`, `<store>/<sha[:2]>/<sha>`) and the worker reads it from
there with `read_one`, the same code path as the local engine, then saves the result in the
database itself. Nothing is lost and nothing is kept twice:

- tasks are acknowledged after they ran (acks_late, prefetch 1), so a worker killed mid-task
  leaves its message unacknowledged and the broker hands it to another worker (Redis: after
  `redelivery_after` seconds; a pool child that dies is requeued at once);
- saving is an upsert by the photos' content key, so a redelivered task rewrites the same rows;
- every delivery is counted in `<store>/attempts/<photos_key>`: a submission whose reading
  killed a worker twice is recorded as `error: worker_crashed` on its third delivery;
- a database that is down is retried with exponential backoff; the broker connection retries on its own.

The submitter waits for each task, takes its result from the database and feeds the same JSONL
file, resume and progress callback as `run_batch`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy.exc import OperationalError

from ocr.batch import BatchSummary, ReadSettings, append_record, load_photo, read_one, resume
from ocr.inputs import PhotoRef, SubmissionInput
from ocr.reasons import ReasonCode
from ocr.result import SubmissionResult, error_result, photos_key
from ocr.store import ResultStore, StoreUnavailable

TASK = "formc.read_submission"
MAX_DELIVERIES = 3  # the third delivery of a submission that killed two workers records it as an error
DB_RETRIES = 8  # with backoff capped at 60 s: a database down for several minutes loses nothing
POLL_S = 0.2


def make_app(broker: str, db_url: str | None = None, store_dir: Path | None = None,
             redelivery_after: float = 600.0) -> Celery:
    """The Celery app of a submitter (no db/store) or a worker. The result backend is Redis when the broker is
    (results are a few bytes), else RabbitMQ's reply queues."""
    backend = broker if broker.startswith(("redis://", "rediss://")) else "rpc://"
    app = Celery("formc", broker=broker, backend=backend)
    app.conf.update(
        task_acks_late=True, worker_prefetch_multiplier=1, task_reject_on_worker_lost=True,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        # Redis keeps an unacknowledged message invisible this long before giving it to another worker: longer
        # than any read, short enough that a killed worker's submission is not waited on for an hour (the default).
        # Workers look for such messages every tenth of that (one Redis scan each, not kombu's default of 100 s).
        broker_transport_options={"visibility_timeout": redelivery_after, "unacked_restore_throttle": 1,
                                  "unacked_restore_interval": max(1, round(redelivery_after / 10))},
        result_backend_transport_options={"visibility_timeout": redelivery_after},
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        task_publish_retry=True, task_publish_retry_policy={"max_retries": 10, "interval_start": 0.5,
                                                            "interval_step": 1, "interval_max": 10},
        result_expires=24 * 3600, worker_hijack_root_logger=False,
        formc_db=db_url, formc_store=str(store_dir) if store_dir else None)
    app.task(name=TASK, bind=True, acks_late=True, max_retries=DB_RETRIES)(_read_submission_task)
    return app


_worker: dict = {}  # per pool process: the classifier and the database connection, made once


def _in_worker(app: Celery) -> tuple[ResultStore, Path]:
    if "store" not in _worker:
        from ocr.digits import DigitClassifier

        _worker["classifier"] = DigitClassifier(threads=1)
        _worker["store"] = ResultStore(app.conf.formc_db)
    return _worker["store"], Path(app.conf.formc_store)


def _count_delivery(store_dir: Path, key: str) -> int:
    """This delivery's number for the submission `key` (1 for the first), kept in the shared store."""
    path = store_dir / "attempts" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:  # one byte per delivery: appends from two workers never overwrite each other
        f.write(".")
    return path.stat().st_size


def _read_submission_task(task, payload: dict) -> dict:
    """Reads one submission (photos by path in the shared store) and saves its result; {photos_key, status}."""
    try:
        store, store_dir = _in_worker(task.app)
        sub = SubmissionInput(payload["submission"], tuple(PhotoRef(*p) for p in payload["photos"]))
        key = payload["photos_key"]
        if _count_delivery(store_dir, key) >= MAX_DELIVERIES:
            result = error_result(sub.submission, [r.source for r in sub.photos], payload["hashes"],
                                  ReasonCode.WORKER_CRASHED, "reading these photos killed the worker process twice "
                                  "(out of memory or a crash in a library)")
        else:
            result = read_one(sub, ReadSettings(template_id=payload["template_id"]), _worker["classifier"])
        store.save(result)
    except (StoreUnavailable, OperationalError) as exc:
        _worker.pop("store", None)  # reconnect on the retry
        # A retry is a new delivery of the same submission, but no crash: it must not count towards worker_crashed.
        (Path(task.app.conf.formc_store) / "attempts" / payload["photos_key"]).unlink(missing_ok=True)
        raise task.retry(exc=exc, countdown=min(60, 2 ** task.request.retries))
    (store_dir / "attempts" / key).unlink(missing_ok=True)
    return {"photos_key": result.photos_key, "status": result.status}


def _payload(sub: SubmissionInput, photo_store, settings: ReadSettings) -> dict:
    """The message for `sub`: its photos copied into the shared store, named there by content. A photo that cannot
    be loaded keeps its original place, so the worker refuses it with the same reason as the local engine."""
    photos, hashes = [], []
    for ref in sub.photos:
        data, sha = load_photo(ref)
        if isinstance(data, bytes):
            photo_store.put(data)
            photos.append([ref.source, str(photo_store.photo_path(sha)), None])
        else:
            photos.append([ref.source, ref.path, ref.archive])
        hashes.append(sha)
    key = photos_key(hashes, [ref.source for ref in sub.photos])
    return {"submission": sub.submission, "photos": photos, "hashes": hashes, "photos_key": key,
            "template_id": settings.template_id}


def run_cluster_batch(submissions: list[SubmissionInput], out: Path, broker: str, store_dir: Path, store: ResultStore,
                      settings: ReadSettings = ReadSettings(),
                      on_result: Callable[[SubmissionInput, SubmissionResult | None], None] = lambda s, r: None
                      ) -> BatchSummary:
    """`run_batch` on a cluster: every submission not already in `out` is read by a `formc worker` on `broker`, which
    saves it in `store`'s database; each result is appended to `out` as it comes."""
    from ocr.web.photos import PhotoStore

    if settings.previews is not None:
        raise ValueError("previews are drawn by the local engine only")
    app = make_app(broker)
    photo_store = PhotoStore(store_dir)
    done = resume(out, store)
    summary = BatchSummary()
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pending = {}  # AsyncResult -> (submission, payload)
    try:
        for sub in submissions:
            payload = _payload(sub, photo_store, settings)
            if (sub.submission, payload["photos_key"]) in done:
                summary.add(sub, None)
                on_result(sub, None)
                continue
            pending[app.send_task(TASK, args=[payload])] = (sub, payload)
        while pending:
            finished = [r for r in pending if r.ready()]
            if not finished:
                time.sleep(POLL_S)
            for async_result in finished:
                sub, payload = pending.pop(async_result)
                result = None
                if async_result.successful():
                    result = store.get(async_result.result["photos_key"])
                if result is None:  # the task gave up (the database stayed down): the record says why
                    result = error_result(sub.submission, [p[0] for p in payload["photos"]], payload["hashes"],
                                          ReasonCode.INTERNAL_ERROR, f"cluster task failed: {async_result.result!r}")
                    store.save(result)
                async_result.forget()
                append_record(fd, result)
                summary.add(sub, result)
                on_result(sub, result)
    finally:
        os.close(fd)
        summary.seconds = time.perf_counter() - start
    return summary


@dataclass(frozen=True)
class ClusterStatus:
    workers: dict[str, int]  # each answering worker -> submissions it is reading now
    queued: int  # submissions waiting in the broker's queue
    results: dict[str, int] = field(default_factory=dict)  # stored submissions by status (when a database was given)


def cluster_status(broker: str, db_url: str | None = None, timeout_s: float = 2.0) -> ClusterStatus:
    """Health and load of the cluster on `broker`: workers that answer within `timeout_s`, what they read, what waits."""
    app = make_app(broker)
    active = app.control.inspect(timeout=timeout_s).active() or {}
    with app.connection_for_read() as connection:
        try:
            queued = connection.default_channel.queue_declare(app.conf.task_default_queue, passive=True).message_count
        except ChannelError:  # the queue does not exist until a first task is sent: nothing waits
            queued = 0
    results = {}
    if db_url is not None:
        with ResultStore(db_url) as store:
            results = store.count_by_status()
    return ClusterStatus({name: len(tasks) for name, tasks in sorted(active.items())}, queued, results)

"""The distributed engine: `formc batch --engine celery` (and `formc serve --broker`) send submissions to
`formc worker` processes.

Messages carry only names and paths: the submitter copies every photo into the shared
content-addressed store (`PhotoStore`, `<store>/<sha[:2]>/<sha>`) and the worker reads it from
there with `read_one`, the same code path as the local engine, then saves the result in the
database itself. Nothing is lost and nothing is kept twice:

- tasks are acknowledged after they ran (acks_late, prefetch 1), so a worker killed mid-task
  leaves its message unacknowledged and the broker hands it to another worker (Redis: after
  `redelivery_after` seconds; a pool child that dies is requeued at once);
- saving is an upsert by the submission's name and its photos' content key, so a redelivered task rewrites the
  same rows;
- every delivery is counted in the database (`ResultStore.count_delivery`): a submission whose
  reading killed a worker twice is recorded as `error: worker_crashed` on its third delivery, and that record
  stands: a copy re-sent past the visibility timeout neither reads it again nor overwrites it;
- a database that is down is retried with exponential backoff; the broker connection retries on its own;
  the submitter waits out an outage of either for up to `OUTAGE_S`.

The submitter is told of each finished task (no polling) and takes the record the task returns;
`ClusterEngine` is an engine of `ocr/run/batch.py run_batch`, which writes the JSONL as for a local run.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from celery import Celery
from celery.result import AsyncResult, ResultSet
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import ConnectionError as RedisUnavailable
from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ocr.db.store import ResultStore, StoreUnavailable
from ocr.db.uploads import record_upload, submission_id_of
from ocr.pipeline import ReaderSettings, classifier
from ocr.reader.reasons import ReasonCode
from ocr.record import SubmissionResult, TpsIdentity, error_result, photos_key
from ocr.run.batch import Done, save_missing
from ocr.run.inputs import PhotoRef, SubmissionInput
from ocr.run.local import BatchSettings, crashed_result, read_one
from ocr.run.photo_store import PhotoStore
from ocr.templates.catalog import load_templates

TASK = "formc.read_submission"
MAX_DELIVERIES = 3  # the third delivery of a submission that killed two workers records it as an error
DB_RETRIES = 8  # with backoff capped at 60 s: a database down for several minutes loses nothing
OUTAGE_S = 600.0  # the submitter waits this long for a broker or database that went away, then gives up
# What an unreachable broker or result backend raises (a Redis result backend raises redis' own error), and a database.
BROKER_OUTAGES = (BrokerUnavailable, RedisUnavailable, ConnectionError, TimeoutError)
DATABASE_OUTAGES = (OperationalError, StoreUnavailable)
OUTAGES = (*DATABASE_OUTAGES, *BROKER_OUTAGES)


def outlasting(what: str, on_wait: Callable[[str], None] = lambda message: None,
               outages: tuple[type[BaseException], ...] = OUTAGES) -> Retrying:
    """Retries a call through an outage of the broker or the database (backoff up to 10 s, for `OUTAGE_S`);
    `on_wait` hears why it waits."""
    return Retrying(retry=retry_if_exception_type(outages), wait=wait_exponential(multiplier=0.5, max=10),
                    stop=stop_after_delay(OUTAGE_S), reraise=True,
                    before_sleep=lambda state: on_wait(f"{what}: {_why(state.outcome.exception())}; retrying"))


def _why(exc: BaseException) -> str:
    """The error's class and message (redis' own errors print only their class in repr)."""
    return f"{type(exc).__name__}: {exc}"


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


_worker: dict = {}  # per pool process: the templates and the database connection, made once


def _in_worker(app: Celery) -> tuple[ResultStore, Path]:
    if "store" not in _worker:
        _worker["templates"] = tuple(load_templates().values())
        classifier(1)  # loaded before the freeze below
        _worker["store"] = ResultStore(app.conf.formc_db)
        # What exists now lives as long as the process: hidden from the garbage collector, which otherwise walks the
        # worker's inherited objects at every full collection (reads in the pool process were 18 % slower).
        gc.freeze()
    return _worker["store"], Path(app.conf.formc_store)


def _read_submission_task(task, payload: dict) -> dict:
    """Reads one submission (photos by path in the shared store) and saves its result; {photos_key, status, record}.
    With `draw`, also draws the review app's page images and box crops into the store."""
    try:
        store, store_dir = _in_worker(task.app)
        # A photo in the store is named by its hash (the submitter's): not hashed again.
        sub = SubmissionInput(payload["submission"], tuple(
            PhotoRef(*p[:3], sha256=sha if p[2] is None and sha else "", member=p[3] if len(p) > 3 else None)
            for p, sha in zip(payload["photos"], payload["hashes"])),
            TpsIdentity.model_validate(payload["place"]) if payload.get("place") else None)
        key = (payload["submission"], payload["photos_key"])
        # A straggler (re-sent past the visibility timeout) of a submission already recorded as killing workers is
        # not read again, and one still reading when that record is made does not overwrite it: the record stands.
        if (crashed := _crashed_record(store, key)) is not None:
            return _task_result(crashed)
        # A retry (database down) is a new message: its deliveries count afresh, so only crashes count.
        if store.count_delivery(*key, task.request.retries) >= MAX_DELIVERIES:
            result = crashed_result(sub, payload["hashes"])
        else:
            on_read = PhotoStore(store_dir).draw if payload.get("draw") else None
            result = read_one(sub, _worker["templates"], BatchSettings(ReaderSettings(template_id=payload["template_id"])),
                              on_read=on_read)
            if (crashed := _crashed_record(store, key)) is not None:
                store.clear_deliveries(*key)
                return _task_result(crashed)
        upload = payload.get("upload")  # from the review app: who uploaded it (and what it completes), as it does locally
        store.save(result, upload.get("replaces") if upload is not None else None)
        if upload is not None:
            record_upload(store, submission_id_of(store, *key), upload["user"][0], [p[0] for p in payload["photos"]],
                          upload["id"])
        store.clear_deliveries(*key)
    except (StoreUnavailable, OperationalError) as exc:
        if (stale := _worker.pop("store", None)) is not None:  # reconnect on the retry
            stale.close()
        raise task.retry(exc=exc, countdown=min(60, 2 ** task.request.retries))
    return _task_result(result)


def _task_result(result: SubmissionResult) -> dict:
    # The record itself (~15 KB) rides back with the task's result: the submitter need not query the database for it.
    return {"photos_key": result.photos_key, "status": result.status, "record": result.model_dump_json()}


def _crashed_record(store: ResultStore, key: tuple[str, str]) -> SubmissionResult | None:
    """The stored record of this submission if it says that reading it killed workers (`worker_crashed`)."""
    stored = store.get(*key)
    if stored is not None and any(r.code == ReasonCode.WORKER_CRASHED for r in stored.reasons):
        return stored
    return None


def payload(submission: str, photos: list[list[str | int | None]], hashes: list[str], template_id: str | None = None,
            draw: bool = False, place: TpsIdentity | None = None) -> dict:
    """The message reading `submission`: its photos as [source, path, archive(, zip member index)] (paths the
    workers can open) and their sha256 ("": not loadable); the place the record carries."""
    return {"submission": submission, "photos": photos, "hashes": hashes, "template_id": template_id, "draw": draw,
            "photos_key": photos_key(hashes, [p[0] for p in photos]),
            "place": None if place is None else place.model_dump()}


def send(app: Celery, message: dict) -> AsyncResult:
    """Queues `message` (from `payload`) for the workers."""
    return app.send_task(TASK, args=[message])


def _stored(sub: SubmissionInput, photo_store: PhotoStore, settings: BatchSettings) -> dict:
    """The message for `sub`: its photos copied into the shared store, named there by content. A photo that cannot
    be loaded keeps its original place, so the worker refuses it with the same reason as the local engine."""
    photos, hashes = [], []
    for ref in sub.photos:
        photo = ref.load()
        if isinstance(photo.data, bytes):
            photo_store.put(photo.data, photo.sha256)
            photos.append([ref.source, str(photo_store.photo_path(photo.sha256)), None])
        else:
            photos.append([ref.source, ref.path, ref.archive, ref.member])  # a zip member by its place: names repeat
        hashes.append(photo.sha256)
    # A refused place never reaches a worker: run_batch records it.
    return payload(sub.submission, photos, hashes, settings.reader.template_id,
                   place=sub.place if isinstance(sub.place, TpsIdentity) else None)


class ClusterEngine:
    """Reads on the `formc worker`s of a cluster: every submission's photos go into the shared photo store and a task
    onto `broker`; the workers save each result in the database themselves. Outages of the broker or the database
    are waited out (`on_wait` says so)."""

    saves_results = True

    def __init__(self, broker: str, store_dir: Path, store: ResultStore, settings: BatchSettings = BatchSettings(),
                 on_wait: Callable[[str], None] = lambda message: None) -> None:
        if settings.previews is not None:
            raise ValueError("previews are drawn by the local engine only")
        self.broker, self.app, self.photo_store, self.store = broker, make_app(broker), PhotoStore(store_dir), store
        self.settings, self.on_wait = settings, on_wait

    def save_missing(self, done: dict[tuple[str, str], str], store) -> None:
        outlasting("opening the results", self.on_wait)(save_missing, done, store)

    def read(self, submissions: list[SubmissionInput], done: Done) -> Iterator[tuple[SubmissionInput,
                                                                                     SubmissionResult | None]]:
        pending: dict[str, tuple[AsyncResult, SubmissionInput, dict]] = {}  # task id -> its result, submission, message
        for sub in submissions:
            message = _stored(sub, self.photo_store, self.settings)
            if (sub.submission, message["photos_key"]) in done:
                yield sub, None
                continue
            async_result = outlasting("sending to the broker", self.on_wait)(send, self.app, message)
            pending[async_result.id] = (async_result, sub, message)
        while pending:
            try:  # results are pushed as they are stored (Redis pub/sub, RabbitMQ replies): no polling
                for task_id, _ in ResultSet([r for r, _, _ in pending.values()], app=self.app).iter_native():
                    # Kept in `pending` until fetched: a database outage longer than OUTAGE_S stops the batch, loses
                    # nothing (the next run sends what is not in the JSONL).
                    async_result, sub, message = pending[task_id]
                    result = outlasting("fetching a result", self.on_wait, DATABASE_OUTAGES)(
                        _outcome, async_result, message, self.store)
                    del pending[task_id]
                    yield sub, result
            except BROKER_OUTAGES as exc:  # the wait for the broker to come back starts now
                self.on_wait(f"waiting for results: {_why(exc)}")
                self.app = outlasting("reaching the broker", self.on_wait)(self._reconnected, next(iter(pending)))
                pending = {task_id: (self.app.AsyncResult(task_id), sub, message)
                           for task_id, (_, sub, message) in pending.items()}

    def _reconnected(self, task_id: str) -> Celery:
        """A new app once its result backend answers (asked for `task_id`): the old one's result consumer may keep a
        subscription that died with the broker, and its results would never arrive."""
        app = make_app(self.broker)
        try:
            app.AsyncResult(task_id).ready()
        except Exception:
            app.close()
            raise
        with contextlib.suppress(Exception):  # its connections are gone anyway
            self.app.close()
        return app


def _outcome(async_result: AsyncResult, message: dict, store: ResultStore) -> SubmissionResult:
    """The result of a finished task: the record it returned, as saved. A failed task's is looked up in the database:
    a worker that saved the result and then lost the broker reports a failure for a read that is done. No row:
    recorded as an error."""
    if async_result.successful() and "record" in async_result.result:  # a worker of an older formc returns none
        result = SubmissionResult.model_validate_json(async_result.result["record"])
    else:
        result = store.get(message["submission"], message["photos_key"])
    if result is None:  # the task gave up before saving (the database stayed down)
        result = error_result(message["submission"], [p[0] for p in message["photos"]], message["hashes"],
                              ReasonCode.INTERNAL_ERROR, f"cluster task failed: {async_result.result!r}")
        store.save(result)
    async_result.forget()
    return result


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

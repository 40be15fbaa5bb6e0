"""The Celery engine end to end: a real redis-server and PostgreSQL, two `formc worker` processes, one SIGKILLed
in the middle of a batch; every submission must come out exactly once, as a local read gives it.

Skips with a message without redis-server (Debian package redis-server) or PostgreSQL. FORMC_CLUSTER_SUBMISSIONS
sets the batch size (default 100, the issue's acceptance run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench.servers import ServerUnavailable, postgres_server, redis_server, start_worker
from ocr.db.store import ResultStore
from ocr.record import SubmissionResult
from ocr.run.inputs import find_submissions
from ocr.run.local import BatchSettings, read_one
from ocr.templates.catalog import load_templates
from tests.conftest import throwaway_url

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "kwk-gubernur-3" / "tps-0001"
SUBMISSIONS = int(os.environ.get("FORMC_CLUSTER_SUBMISSIONS", "100"))
TEMPLATES = tuple(load_templates().values())
REDELIVERY_AFTER_S = 5  # short, so the killed worker's submission is redelivered within the test
OUTAGE_S = 5
CLI_ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # `python -m cli` of this checkout


def _submit_command(inputs: Path, out: Path, broker: str, db_url: str, store: Path) -> list[str]:
    """`formc batch INPUTS --engine celery` onto `broker`, recording into `out`."""
    return [sys.executable, "-m", "cli", "batch", str(inputs), "--out", str(out), "--engine", "celery", "--broker",
            broker, "--db", db_url, "--store", str(store)]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A URL to a throwaway redis-server on a free port, stopped after the module."""
    yield from throwaway_url(redis_server)


def _submissions(root: Path, count: int) -> Path:
    """`count` submissions of the sample's photos, each made distinct by bytes after the JPEG's end (which decoders
    ignore), so every one has its own photos_key and reads as the sample does."""
    for n in range(count):
        folder = root / f"tps-{n:04d}"
        folder.mkdir(parents=True)
        for photo in SAMPLE.glob("*.jpg"):
            (folder / photo.name).write_bytes(photo.read_bytes() + f"formc-test-{n}".encode())
    return root


def _comparable(result) -> dict:
    """What a read found, without what differs by name, by bytes or by run (timings)."""
    data = result.model_dump(exclude={"submission", "photos_key", "timings_ms"})
    for page in data["pages"]:
        page.pop("sha256")
        page["source"] = Path(page["source"]).name  # tps-0003/page-1.jpg: the folder is the submission's name
    return data


def _batch_through(tmp_path: Path, broker: str, db_url: str, count: int,
                   meanwhile: Callable[[list], None]) -> tuple[Path, str]:
    """Submits `count` submissions to two workers and, once both are reading, calls `meanwhile(workers)` (the
    mishap); the batch's JSONL output and what the submitter printed, once it exits."""
    inputs = _submissions(tmp_path / "in", count)
    store, out = tmp_path / "store", tmp_path / "results.jsonl"
    with ResultStore(db_url) as db:  # migrated before two workers race to create the tables
        assert not db.keys()
    workers = [start_worker(broker, db_url, store, tmp_path / f"worker-{n}.log", REDELIVERY_AFTER_S) for n in range(2)]
    try:
        submit = subprocess.Popen(_submit_command(inputs, out, broker, db_url, store), cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV)
        with ResultStore(db_url) as db:
            deadline = time.monotonic() + 120
            while len(db.keys()) < 2 and time.monotonic() < deadline:  # both workers are reading by now
                time.sleep(0.1)
        meanwhile(workers)
        try:
            _, stderr = submit.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            submit.kill()
            _, stderr = submit.communicate()
            logs = "".join(f"--- {log.name}:\n{log.read_text()[-4000:]}" for log in tmp_path.glob("worker-*.log"))
            pytest.fail(f"the batch did not finish in 300 s; the submitter said:\n{stderr[-4000:]}\n{logs}")
        assert submit.returncode == 0, stderr
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(30)
    return out, stderr


def _assert_each_once_as_read_locally(out: Path, db_url: str, count: int) -> None:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["submission"] for r in lines) == [f"tps-{n:04d}" for n in range(count)]
    found = {s.submission: s for s in find_submissions(out.parent / "in").submissions}
    expected = _comparable(read_one(found["tps-0000"], TEMPLATES, BatchSettings()))
    with ResultStore(db_url) as db:
        assert db.keys() == {(r["submission"], r["photos_key"]) for r in lines}  # one row per submission: none twice
        for r in lines:
            assert _comparable(SubmissionResult.model_validate(r)) == expected, r["submission"]  # the JSONL line
            stored = db.get(r["submission"], r["photos_key"])
            assert stored.submission == r["submission"]
            assert _comparable(stored) == expected


def test_a_killed_worker_loses_nothing_and_doubles_nothing(tmp_path: Path, redis_url: str, empty_postgres_url: str) -> None:
    def kill_one(workers: list) -> None:
        log = tmp_path / "worker-0.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # mid-task: a submission received and not finished yet
            text = log.read_text()
            if text.count("] received") > text.count("] succeeded"):
                break
            time.sleep(0.02)
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait()

    out, _ = _batch_through(tmp_path, redis_url, empty_postgres_url, SUBMISSIONS, kill_one)
    killed_log = (tmp_path / "worker-0.log").read_text()
    # The kill came mid-task: a submission received by the killed worker and never finished there.
    assert killed_log.count("] received") > killed_log.count("] succeeded"), killed_log
    _assert_each_once_as_read_locally(out, empty_postgres_url, SUBMISSIONS)


@pytest.mark.parametrize("down", ["database", "broker"])
def test_a_brief_outage_loses_nothing_and_doubles_nothing(tmp_path: Path, down: str) -> None:
    """PostgreSQL or redis-server stopped for 5 s mid-batch and started again: workers retry with backoff, the
    submitter waits, and the batch completes with every submission once."""
    with ExitStack() as servers:
        try:  # servers of their own: stopping the session's would fail other tests
            redis, postgres = servers.enter_context(redis_server()), servers.enter_context(postgres_server())
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        server = postgres if down == "database" else redis

        def outage(_workers: list) -> None:
            server.stop()
            time.sleep(OUTAGE_S)
            server.start()

        out, _ = _batch_through(tmp_path, redis.url, postgres.url, 30, outage)
        _assert_each_once_as_read_locally(out, postgres.url, 30)
    logs = "".join(log.read_text() for log in tmp_path.glob("worker-*.log"))
    # The outage came mid-batch: the workers met it (a task retried, or the broker connection re-established).
    assert ("retry: Retry in" if down == "database" else "Connection to broker lost") in logs


def test_a_killed_submitter_resumes_without_doubles(tmp_path: Path, redis_url: str) -> None:
    """`formc batch --engine celery` SIGKILLed mid-batch and run again on the same output: what it recorded is kept,
    the rest is read, every submission once in the JSONL and the database."""
    from ocr.run.cluster import make_app

    count = 30
    inputs = _submissions(tmp_path / "in", count)
    store, out = tmp_path / "store", tmp_path / "results.jsonl"
    make_app(redis_url).control.purge()
    with ExitStack() as stack:
        try:
            db_url = stack.enter_context(postgres_server()).url
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        workers = [start_worker(redis_url, db_url, store, tmp_path / f"worker-{n}.log", REDELIVERY_AFTER_S)
                   for n in range(2)]
        try:
            command = _submit_command(inputs, out, redis_url, db_url, store)
            first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=CLI_ENV)
            deadline = time.monotonic() + 120
            while (not out.exists() or out.read_text().count("\n") < 5) and time.monotonic() < deadline:
                time.sleep(0.05)
            first.kill()
            first.wait()
            recorded = out.read_text().count("\n")
            assert 5 <= recorded < count, recorded
            again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=CLI_ENV, timeout=300)
            assert again.returncode == 0, again.stderr
            assert f"{recorded} already in" in again.stderr.replace("\n", " "), again.stderr
        finally:
            for w in workers:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(30)
        _assert_each_once_as_read_locally(out, db_url, count)


def test_status_shows_workers_queue_depth_and_results(tmp_path: Path, redis_url: str, empty_postgres_url: str) -> None:
    from ocr.run.cluster import TASK, make_app

    def status() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "status", "--broker", redis_url, "--db", empty_postgres_url],
                              cwd=REPO, capture_output=True, text=True, env=CLI_ENV)

    app = make_app(redis_url)
    app.control.purge()  # what the killed-worker test may have left unread
    idle = status()
    assert idle.returncode == 1 and "workers answering: 0" in idle.stdout, idle.stdout + idle.stderr
    for n in range(3):  # no worker yet: they wait in the queue
        app.send_task(TASK, args=[{"submission": f"waiting-{n}"}])
    waiting = status()
    assert "submissions waiting in the queue: 3" in waiting.stdout, waiting.stdout
    app.control.purge()
    worker = start_worker(redis_url, empty_postgres_url, tmp_path / "store", tmp_path / "worker.log", REDELIVERY_AFTER_S)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1.0) and time.monotonic() < deadline:
            pass
        up = status()
        assert up.returncode == 0, up.stdout + up.stderr
        assert "workers answering: 1" in up.stdout and "reading 0" in up.stdout
        assert "submissions waiting in the queue: 0" in up.stdout and "results: " in up.stdout
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)


def test_a_straggler_of_a_crashed_submission_leaves_its_record_alone(tmp_path: Path, redis_url: str,
                                                                      empty_postgres_url: str) -> None:
    """A copy of the message re-sent past the visibility timeout after the third delivery recorded `worker_crashed`:
    the worker answers with that record, without reading the photos again or counting a delivery."""
    from ocr.run.cluster import make_app, payload, send
    from ocr.run.inputs import PhotoRef, SubmissionInput
    from ocr.run.local import crashed_result

    photos = [[p.name, str(p), None] for p in sorted(SAMPLE.glob("*.jpg"))]
    message = payload("straggler", photos, [f"{i:064x}" for i in range(len(photos))])
    sub = SubmissionInput("straggler", tuple(PhotoRef(*p) for p in photos))
    with ResultStore(empty_postgres_url) as db:
        db.save(crashed := crashed_result(sub, message["hashes"]).model_copy(update={"photos_key": message["photos_key"]}))
    worker = start_worker(redis_url, empty_postgres_url, tmp_path / "store", tmp_path / "worker.log", REDELIVERY_AFTER_S)
    try:
        answer = send(make_app(redis_url), message).get(timeout=120)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    assert SubmissionResult.model_validate_json(answer["record"]) == crashed
    with ResultStore(empty_postgres_url) as db:
        assert db.get("straggler", message["photos_key"]) == crashed
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM deliveries WHERE submission = 'straggler'"
                                              ).scalar_one() == 0


def test_a_submission_that_kills_workers_twice_is_recorded_as_an_error(tmp_path: Path, redis_url: str,
                                                                        empty_postgres_url: str) -> None:
    """The kernel's OOM killer, played by the test: each time a pool process is reading the poison submission it is
    SIGKILLed. The deliveries that die count; the third records `worker_crashed` instead of reading, and the batch
    goes on."""
    from ocr.run.cluster import make_app

    inputs = _submissions(tmp_path / "in", 4)
    poison = inputs / "poison"
    poison.mkdir()
    for copy in range(20):  # 60 photos: long enough to read that the test sees which process is reading it
        for photo in SAMPLE.glob("*.jpg"):
            (poison / f"{copy}-{photo.name}").write_bytes(photo.read_bytes() + f"poison-{copy}".encode())
    store, out = tmp_path / "store", tmp_path / "results.jsonl"
    make_app(redis_url).control.purge()
    workers = [start_worker(redis_url, empty_postgres_url, store, tmp_path / f"worker-{n}.log", REDELIVERY_AFTER_S)
               for n in range(2)]
    killed: set[float] = set()  # the start times of the deliveries killed
    database = ResultStore(empty_postgres_url).engine  # made and migrated now: the workers may not have yet

    def counted() -> int:  # the poison's deliveries the workers have counted so far
        with database.connect() as connection:
            return connection.exec_driver_sql("SELECT coalesce(max(count), 0) FROM deliveries "
                                              "WHERE submission = 'poison'").scalar_one()

    try:
        submit = subprocess.Popen(_submit_command(inputs, out, redis_url, empty_postgres_url, store), cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV)
        inspect = make_app(redis_url).control.inspect(timeout=0.25)
        deadline = time.monotonic() + 180
        # Every counted delivery of the poison seen reading is killed until the batch ends: the broker may deliver
        # it twice after one kill (the lost worker's requeue and the visibility timeout), so one kill can suffice.
        while submit.poll() is None and time.monotonic() < deadline:
            for tasks in (inspect.active() or {}).values():
                for task in tasks:
                    # One kill per delivery: a reply may still list the delivery just killed, by its start time;
                    # and only once it is counted (killed before its count, it would cost no delivery).
                    if task["args"][0]["submission"] == "poison" and task["time_start"] not in killed \
                            and counted() > len(killed):
                        try:
                            os.kill(task["worker_pid"], signal.SIGKILL)  # a new pool process replaces it
                        except ProcessLookupError:  # it finished and was replaced meanwhile: look again
                            continue
                        killed.add(task["time_start"])
        assert 1 <= len(killed) <= 2, "the poison submission was not seen being read"
        _, stderr = submit.communicate(timeout=300)
        # The batch goes on past the poison submission and then says it failed (README's exit code 1).
        assert submit.returncode == 1 and "1 submission(s) could not be read" in stderr, stderr
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
            w.wait(30)
    lines = {r["submission"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(lines) == ["poison"] + [f"tps-{n:04d}" for n in range(4)]  # each once
    assert lines["poison"]["status"] == "error" and lines["poison"]["reasons"][0]["code"] == "worker_crashed"
    assert all(lines[f"tps-{n:04d}"]["status"] != "error" for n in range(4))
    with ResultStore(empty_postgres_url) as db:
        assert db.get("poison", lines["poison"]["photos_key"]).model_dump(mode="json")["reasons"] == lines["poison"]["reasons"]
        with db.engine.connect() as connection:  # every finished read forgot its deliveries
            assert connection.exec_driver_sql("SELECT count(*) FROM deliveries").scalar_one() == 0


def test_the_review_app_hands_uploads_to_the_cluster(tmp_path: Path, redis_url: str) -> None:
    """`formc serve --broker`: an upload is read by a worker (not the web process), which draws the review images
    into the shared store and records the uploader; a later upload of the pages missing completes the same submission;
    the page shows what a local read of them all gives."""
    from starlette.testclient import TestClient

    from ocr.db.store import default_url
    from ocr.review.accounts import hash_password
    from ocr.web.app import create_app
    from tests.web.test_web import PASSWORD, log_in, upload, wait_for_submission

    db_url, store = default_url(tmp_path / "results.db"), tmp_path / "store"
    app = create_app(db_url, store, secret="test-secret", broker=redis_url)
    worker = start_worker(redis_url, db_url, store, tmp_path / "worker.log", REDELIVERY_AFTER_S)
    try:
        with TestClient(app) as client:
            app.state.reviews.add_user("olga", "operator", hash_password(PASSWORD))
            csrf = log_in(client, "olga")
            submission_id = wait_for_submission(client, upload(client, csrf, "kab-x/tps-0001", SAMPLE, "page-1.jpg"))
            assert app.state.reviews.view(submission_id).result.status == "incomplete"
            assert wait_for_submission(client, upload(client, csrf, "kab-x/tps-0001", SAMPLE, "page-[23].jpg")) == submission_id
            view = app.state.reviews.view(submission_id)
            assert view.uploaded_by is not None and view.uploaded_by.name == "olga"
            uploads = [e for e in app.state.reviews.audit(submission_id=submission_id) if e["action"] == "upload"]
            assert len(uploads) == 2
            for n in range(3):  # drawn by the worker into the shared store
                image = client.get(f"/submissions/{submission_id}/page-{n}.jpg")
                assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    assert "formc.read_submission" in (tmp_path / "worker.log").read_text()
    found = {s.submission: s for s in find_submissions(SAMPLE.parent).submissions}
    assert _comparable(view.result) == _comparable(read_one(found["tps-0001"], TEMPLATES, BatchSettings()))

"""The Celery engine against the local engine on the same photos: photos/s and the cluster's overhead per photo.

    .venv/bin/python -m bench.cluster_bench [--count 40] [--rounds 3] [--pinned] [--data /tmp/formc-batch-bench]

Uses the first `--count` three-page 12 MP phone submissions of bench/batch_bench.py's data (made there if
absent), then, in one run, `--rounds` times interleaved: the local engine (`run_batch`, saving into the same
database) with 1 and 2 processes, and the cluster (`ClusterEngine`: a throwaway redis-server broker, a
throwaway PostgreSQL database, `formc worker --concurrency 1` processes) with 1 and 2 workers, each on a fresh
output and, for the cluster, a fresh photo store (copying the photos in is its cost). Workers are started and
warm (classifier loaded) before the clock starts, as on a real night. Overhead = the cluster's seconds per photo
over the local engine's at the same number of reading processes, minus 1. On a machine with fewer cores than
processes + broker + database + submitter, the cluster's figures include that contention (there, counting CPU
instead of wall time tells nothing more: the cores are saturated, CPU per photo follows wall time exactly). The
submitter's own CPU per photo (hashing and copying photos into the store, taking results) is printed: in a
deployment it is spent on the submitting machine, not on the workers. `--pinned` takes that contention out: one
reading process per engine, alone on one core, and everything else (broker, PostgreSQL, the submitter or the local
engine's main process, the workers' Celery main processes) on another: the overhead left is the cluster's own, on
the reading core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from bench.batch_bench import make_data
from bench.servers import postgres_server, redis_server, start_worker
from ocr.db.store import ResultStore
from ocr.run.batch import run_batch
from ocr.run.cluster import ClusterEngine
from ocr.run.inputs import find_submissions
from ocr.run.local import ProcessPool


def _subset(data: Path, count: int, root: Path) -> Path:
    """The first `count` submissions of `data`, hard-linked under `root` (no copy of 12 MP photos)."""
    folders = sorted(p.parent for p in data.glob("*/tps-*/truth.json"))[:count]
    for folder in folders:
        target = root / f"{folder.parent.name}-{folder.name}"
        target.mkdir(parents=True)
        for photo in folder.glob("*.jpg"):
            os.link(photo, target / photo.name)
    return root


def _warm(broker: str, workers: int) -> None:
    """Until `workers` workers answer a ping (their pool started, the classifier loads on the first task)."""
    from ocr.run.cluster import make_app

    app = make_app(broker)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= workers:
            return
    raise RuntimeError(f"{workers} workers did not answer within 120 s")


READING_CORE, SERVICE_CORE = 1, 0  # --pinned: the reading process alone on one core, everything else on the other


def _pin(pids: list[int], core: int) -> None:
    """Every thread of the processes `pids` (0: this one) onto `core`; threads started later inherit it."""
    for pid in pids:
        for thread in psutil.Process(pid or os.getpid()).threads():
            os.sched_setaffinity(thread.id, {core})


def _pin_services() -> None:
    """The throwaway redis-server and PostgreSQL (and the backends PostgreSQL forks later) onto SERVICE_CORE."""
    _pin([p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("redis-server", "postgres")], SERVICE_CORE)


def _run_local(submissions: list, workers: int, out: Path, store: ResultStore, pinned: bool):
    """`run_batch`; pinned: its reading process is started on READING_CORE, then this process moves off it."""
    if not pinned:
        return run_batch(submissions, out, ProcessPool(workers), store=store)
    _pin([0], READING_CORE)  # the pool's process inherits this at its start, on the first submission

    def leave_reading_core(_sub, _result) -> None:
        _pin([0], SERVICE_CORE)

    return run_batch(submissions, out, ProcessPool(workers), store=store, on_result=leave_reading_core)


def _local_rate(submissions: list, workers: int, out: Path, store: ResultStore, pinned: bool = False) -> float:
    """The local engine's marginal photos/s: the whole batch less a batch of one submission per process (pool start
    and classifier load), as the cluster's workers are timed warm. It saves into the same database as the workers."""
    warm = _run_local(submissions[:workers], workers, out.with_suffix(".warm.jsonl"), store, pinned)
    summary = _run_local(submissions, workers, out, store, pinned)
    photos = sum(len(s.photos) for s in submissions[workers:])
    return photos / (summary.seconds - warm.seconds)


def _cluster_rate(submissions: list, workers: int, out: Path, broker: str, db_url: str, store: ResultStore,
                  photo_store: Path, pinned: bool = False) -> tuple[float, float]:
    """The cluster's photos/s with `workers` warm `formc worker --concurrency 1`, and the submitter's CPU ms/photo.
    Pinned: the workers' reading processes on READING_CORE, their Celery main processes and this one on SERVICE_CORE."""
    procs = [start_worker(broker, db_url, photo_store, out.with_suffix(f".worker-{i}.log")) for i in range(workers)]
    try:
        _warm(broker, workers)
        # A first task per worker outside the clock: each loads its classifier then.
        run_batch(submissions[:workers], out.with_suffix(".warm.jsonl"), ClusterEngine(broker, photo_store, store), store)
        if pinned:
            _pin([0] + [p.pid for p in procs], SERVICE_CORE)
            _pin([c.pid for p in procs for c in psutil.Process(p.pid).children()], READING_CORE)
        cpu = time.process_time()
        summary = run_batch(submissions, out, ClusterEngine(broker, photo_store, store), store)
        return summary.photos / summary.seconds, (time.process_time() - cpu) * 1000 / summary.photos
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        shutil.rmtree(photo_store, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=40, help="submissions (three photos each)")
    parser.add_argument("--rounds", type=int, default=3, help="local and cluster runs, interleaved; medians reported")
    parser.add_argument("--data", type=Path, default=Path("/tmp/formc-batch-bench"))
    parser.add_argument("--pinned", action="store_true",
                        help="one reading process only, alone on one core; broker, database, submitter and the "
                             "engines' other processes on another (as on a deployment, where they run elsewhere)")
    args = parser.parse_args()
    if args.pinned and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pinned needs two cores")
    if args.count < 20:  # the marginal rate subtracts a batch of one submission per process: too few and noise rules
        parser.error("--count: at least 20 submissions, or the timings are noise")
    make_data(args.data, args.count, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        submissions = find_submissions(_subset(args.data, args.count, tmp / "in")).submissions
        photos = sum(len(s.photos) for s in submissions)
        counts = (1,) if args.pinned else (1, 2)
        runs: dict[int, list[tuple[float, float, float]]] = {w: [] for w in counts}  # -> (local, cluster, submitter)
        all_cores = os.sched_getaffinity(0)
        with redis_server() as redis, postgres_server() as postgres, ResultStore(postgres.url) as store:
            if args.pinned:
                _pin_services()
            for n in range(args.rounds):  # interleaved: a slow minute of this shared machine hits both engines
                for workers in counts:
                    local = _local_rate(submissions, workers, tmp / f"local-{n}-{workers}.jsonl", store, args.pinned)
                    cluster, submitter_ms = _cluster_rate(submissions, workers, tmp / f"cluster-{n}-{workers}.jsonl",
                                                          redis.url, postgres.url, store, tmp / f"store-{n}-{workers}",
                                                          args.pinned)
                    for thread in psutil.Process().threads():
                        os.sched_setaffinity(thread.id, all_cores)
                    runs[workers].append((local, cluster, submitter_ms))
    pinning = " (pinned: the reading process alone on a core)" if args.pinned else ""
    print(f"{args.count} submissions, {photos} photos of 12 MP, on {os.cpu_count()} cores, {args.rounds} rounds{pinning}:")
    for workers, rounds in runs.items():
        overheads = [local / cluster - 1 for local, cluster, _ in rounds]
        print(f"  {workers} reading process(es): photos/s local {statistics.median(r[0] for r in rounds):6.2f}  "
              f"cluster {statistics.median(r[1] for r in rounds):6.2f}  overhead per photo median "
              f"{statistics.median(overheads):+.1%} (rounds: {', '.join(f'{o:+.1%}' for o in overheads)})  "
              f"submitter CPU {statistics.median(r[2] for r in rounds):.1f} ms/photo")


if __name__ == "__main__":
    main()

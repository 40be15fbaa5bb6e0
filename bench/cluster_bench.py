"""The Celery engine against the local engine on the same photos: photos/s and the cluster's overhead per photo.

    .venv/bin/python -m bench.cluster_bench [--count 40] [--data /tmp/formc-batch-bench]

Uses the first `--count` three-page 12 MP phone submissions of bench/batch_bench.py's data (made there if
absent), then, in one run: the local engine (`run_batch`, saving into the same database) with 1 and 2 processes,
and the cluster (`run_cluster_batch`: a throwaway redis-server broker, a throwaway PostgreSQL database,
`formc worker --concurrency 1` processes) with 1 and 2 workers, each on a fresh output. Workers are started and
warm (classifier loaded) before the clock starts, as on a real night. Overhead = the cluster's seconds per photo
over the local engine's at the same number of reading processes, minus 1. On a machine with fewer cores than
processes + broker + database + submitter, the cluster's figures include that contention.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.batch_bench import make_data
from bench.servers import postgres_server, redis_server, start_worker
from ocr.batch import run_batch
from ocr.cluster import run_cluster_batch
from ocr.inputs import find_submissions
from ocr.store import ResultStore


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
    from ocr.cluster import make_app

    app = make_app(broker)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= workers:
            return
    raise RuntimeError(f"{workers} workers did not answer within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=40, help="submissions (three photos each)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/formc-batch-bench"))
    args = parser.parse_args()
    if args.count < 20:  # the marginal rate subtracts a batch of one submission per process: too few and noise rules
        parser.error("--count: at least 20 submissions, or the timings are noise")
    make_data(args.data, args.count, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        submissions = find_submissions(_subset(args.data, args.count, tmp / "in")).submissions
        photos = sum(len(s.photos) for s in submissions)
        rates: dict[str, float] = {}
        with redis_server() as redis, postgres_server() as postgres, ResultStore(postgres.url) as store:
            broker, db_url = redis.url, postgres.url
            for workers in (1, 2):  # the local engine saves into the same database, as the cluster's workers do
                # Its marginal rate: the whole batch less a batch of one submission per process (pool start and
                # classifier load), as the cluster's workers are timed warm.
                warm = run_batch(submissions[:workers], tmp / f"local-warm-{workers}.jsonl", workers, store=store)
                summary = run_batch(submissions, tmp / f"local-{workers}.jsonl", workers, store=store)
                warm_photos = sum(len(s.photos) for s in submissions[:workers])
                rates[f"local {workers}"] = (photos - warm_photos) / (summary.seconds - warm.seconds)
            for workers in (1, 2):
                procs = [start_worker(broker, db_url, tmp / "store", tmp / f"worker-{i}.log") for i in range(workers)]
                try:
                    _warm(broker, workers)
                    # A first task per worker outside the clock: each loads its classifier then.
                    run_cluster_batch(submissions[:workers], tmp / f"warm-{workers}.jsonl", broker, tmp / "store", store)
                    summary = run_cluster_batch(submissions, tmp / f"cluster-{workers}.jsonl", broker, tmp / "store", store)
                    rates[f"cluster {workers}"] = photos / summary.seconds
                finally:
                    for p in procs:
                        p.terminate()
                        p.wait(30)
    print(f"{args.count} submissions, {photos} photos of 12 MP, on {os.cpu_count()} cores; photos/s:")
    for workers in (1, 2):
        local, cluster = rates[f"local {workers}"], rates[f"cluster {workers}"]
        print(f"  {workers} reading process(es): local {local:6.2f}   cluster {cluster:6.2f}   "
              f"cluster overhead per photo {local / cluster - 1:+.1%}")


if __name__ == "__main__":
    main()

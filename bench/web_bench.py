"""Server time of the review app's pages with many submissions stored: the review page of a queued submission.

    python bench/web_bench.py [--count 10000] [--opens 50] [--db postgresql+psycopg://...]

Reads one real submission (samples/kwk-gubernur-3/tps-0002, the slip sample: `review`), then fills a
fresh database (a temporary SQLite file; also the PostgreSQL database given by --db, whose tables
must be empty or hold earlier bench rows) with `--count` results made from it: names spread over 20
regions, a new photo key each, vote values varied, 1 in 5 left `review` (the rest `ok`), with review
state for 1 in 3 (a third of those verified) and a correction on 1 in 10. Then opens the review page
of `--opens` different queued submissions through the real app (Starlette's TestClient, logged in as
a reviewer) and prints the app's own time per response (its Server-Timing header: request in, first
byte out) as median, p95 and max; the queue, dashboard and preview pages the same way, 5 times each.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from ocr.db.store import ResultStore, default_url  # noqa: E402
from ocr.db.tables import CorrectionRow, ReviewRow  # noqa: E402
from ocr.record import SubmissionResult  # noqa: E402
from ocr.review.accounts import hash_password  # noqa: E402
from ocr.review.workflow import Reviews  # noqa: E402
from ocr.run.inputs import PhotoRef, SubmissionInput  # noqa: E402
from ocr.run.local import BatchSettings, read_one  # noqa: E402
from ocr.templates.catalog import load_templates  # noqa: E402
from ocr.web.app import create_app  # noqa: E402

SAMPLE = ROOT / "samples" / "kwk-gubernur-3" / "tps-0002"
TEMPLATES = tuple(load_templates().values())
PASSWORD = "bench password"
CHUNK = 500  # results per transaction while filling


def real_result() -> SubmissionResult:
    sub = SubmissionInput("tps-0002", tuple(PhotoRef(p.name, str(p)) for p in sorted(SAMPLE.glob("page-*.jpg"))))
    return read_one(sub, TEMPLATES, BatchSettings())


def synthetic(base: SubmissionResult, i: int, rng: random.Random) -> SubmissionResult:
    review = i % 5 == 0
    fields = {}
    for field_id, f in base.fields.items():
        value = None if f.value is None else max(0, f.value + rng.randint(-3, 3))
        fields[field_id] = f.model_copy(update={"value": value, "status": f.status if review else "ok"})
    return base.model_copy(update={
        "submission": f"kab-{i % 20:02d}/kec-{i % 7}/tps-{i:05d}", "status": "review" if review else "ok",
        "photos_key": hashlib.sha256(f"bench-{i}".encode()).hexdigest(), "fields": fields})


def fill(store: ResultStore, reviews: Reviews, base: SubmissionResult, count: int) -> float:
    """Stores `count` results with review state and corrections beside them; seconds taken."""
    start = time.perf_counter()
    rng = random.Random(7)
    reviewer = reviews.add_user("bench-reviewer", "reviewer", hash_password(PASSWORD))
    uploader = reviews.add_user("bench-operator", "operator", hash_password(PASSWORD))
    for first in range(0, count, CHUNK):
        store.save_many(synthetic(base, i, rng) for i in range(first, min(first + CHUNK, count)))
    ids = sorted(reviews.id_of(hashlib.sha256(f"bench-{i}".encode()).hexdigest()) for i in range(0, count, 3))
    with store.engine.begin() as connection:
        connection.execute(insert(ReviewRow), [
            dict(submission_id=s, uploaded_by=uploader.id, state="verified" if n % 3 == 0 else "open",
                 verified_by=reviewer.id if n % 3 == 0 else None) for n, s in enumerate(ids)])
        connection.execute(insert(CorrectionRow), [
            dict(submission_id=s, field_id="suara_sah", old_value=181, new_value=171, reason="bench", user_id=reviewer.id)
            for s in ids[::3]])
    return time.perf_counter() - start


def server_ms(client: TestClient, path: str) -> float:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return float(re.search(r"dur=([\d.]+)", response.headers["server-timing"]).group(1))


def summary(times: list[float]) -> str:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return f"median {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   max {times[-1]:7.1f} ms   (n={len(times)})"


def bench(url: str, label: str, base: SubmissionResult, count: int, opens: int, store_dir: Path) -> None:
    app = create_app(url, store_dir, secret="bench")
    reviews: Reviews = app.state.reviews
    seconds = fill(reviews.store, reviews, base, count)
    print(f"\n{label}: {count:,} submissions stored in {seconds:.1f} s")
    with TestClient(app) as client:
        page = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        client.post("/login", data={"name": "bench-reviewer", "password": PASSWORD, "csrf": csrf})
        queued = [item.id for item in reviews.queue(limit=5 * opens)]
        picks = random.Random(1).sample(queued, min(opens, len(queued)))
        server_ms(client, f"/review/{picks[0]}")  # templates compiled, connections opened: not what is measured
        print(f"  open a queued submission's review page   {summary([server_ms(client, f'/review/{i}') for i in picks])}")
        print(f"  submission preview page                  "
              f"{summary([server_ms(client, f'/submissions/{i}') for i in picks[:5]])}")
        print(f"  review queue (first 100 by risk)         {summary([server_ms(client, '/queue') for _ in range(5)])}")
        print(f"  dashboard over every submission          {summary([server_ms(client, '/dashboard') for _ in range(5)])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--opens", type=int, default=50)
    parser.add_argument("--db", help="also a PostgreSQL database (postgresql+psycopg://...), filled the same way")
    args = parser.parse_args()
    base = real_result()
    print(f"base result: {base.submission}, {base.status}, {len(base.fields)} fields")
    with tempfile.TemporaryDirectory(prefix="formc-web-bench-") as tmp:
        bench(default_url(Path(tmp) / "bench.db"), "SQLite", base, args.count, args.opens, Path(tmp) / "store")
        if args.db:
            bench(args.db, "PostgreSQL", base, args.count, args.opens, Path(tmp) / "store")


if __name__ == "__main__":
    main()

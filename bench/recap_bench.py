"""Server time of the recapitulation and the public results site at every level with 20,000 TPS stored, beside the
review queue's, in one run.

    python bench/recap_bench.py [--tps 20000] [--runs 5] [--no-postgres]

Fills a fresh database (a temporary SQLite file, then a throwaway PostgreSQL server when bench/servers.py can start
one) with `--tps` TPS of the bupati election over the real kelurahan/desa of Kabupaten Bandung (3204, from the
registry), synthetic numbers written straight into the store's tables: the D.Hasil fields of each TPS's read, 1 in 10
TPS read twice (the older read differing), 4 in 10 verified, a correction on 1 in 10 of those, the expected TPS per
desa (PostgreSQL: then ANALYZE, as autovacuum would soon after such a load). Then times `ocr.review.recap.recap`
(what `formc recap` runs) and the /rekap page (Starlette's TestClient, logged in as a reviewer; the app's own time
from its Server-Timing header) at each level, the /publik page of the same region (no log-in; uncached: its cache
cleared before each request, and cached), a desa's and a TPS's public page, and the review queue page, `--runs` times
each: median and max.
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
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bench.servers import ServerUnavailable, postgres_server  # noqa: E402
from bench.web_bench import server_ms  # noqa: E402
from ocr.db.regions import Regions  # noqa: E402
from ocr.db.store import default_url  # noqa: E402
from ocr.db.tables import CorrectionRow, FieldRow, ReviewRow, SubmissionRow  # noqa: E402
from ocr.review.accounts import hash_password  # noqa: E402
from ocr.review.recap import desa_tps, recap  # noqa: E402
from ocr.review.workflow import Reviews  # noqa: E402
from ocr.web.app import create_app  # noqa: E402
from ocr.web.public_limits import TokenBuckets  # noqa: E402

KABUPATEN = "3204"  # Kabupaten Bandung
PASSWORD = "bench password"
CHUNK = 5_000  # rows per INSERT batch
VERIFIED = datetime(2026, 2, 15, 8, tzinfo=timezone.utc)  # the first verification; one a second after it
KECAMATAN, DESA = "320405", "3204052001"  # Cileunyi, Cileunyi Kulon
# (level, region, its public page) of a drill-down from the country to one kecamatan's kelurahan/desa; the public site
# has no page of a kabupaten's desa.
STEPS = (("provinsi", "", "/publik/bupati"), ("kabupaten", "32", "/publik/bupati/32"),
         ("kecamatan", KABUPATEN, f"/publik/bupati/{KABUPATEN}"), ("desa", KABUPATEN, None),
         ("desa", KECAMATAN, f"/publik/bupati/{KECAMATAN}"))


def _read(rng: random.Random) -> dict[str, int]:
    """The D.Hasil fields of one TPS's read: three paslon, sah, tidak sah, total, DPT, pengguna."""
    paslon = [rng.randint(0, 200) for _ in range(3)]
    sah, tidak_sah = sum(paslon), rng.randint(0, 10)
    return dict(suara_paslon_1=paslon[0], suara_paslon_2=paslon[1], suara_paslon_3=paslon[2], suara_sah=sah,
                suara_tidak_sah=tidak_sah, suara_total=sah + tidak_sah, dpt_j=rng.randint(sah + tidak_sah, 700),
                pengguna_total_j=sah + tidak_sah)


def _insert(connection, table: type, rows: list[dict]) -> None:
    for first in range(0, len(rows), CHUNK):
        connection.execute(insert(table), rows[first:first + CHUNK])


def fill(reviews: Reviews, count: int) -> tuple[float, int]:
    """Stores `count` TPS over the kabupaten's desa with reads, verifications, corrections and the TPS list; seconds
    taken and how many desa."""
    start = time.perf_counter()
    rng = random.Random(7)
    regions = Regions(reviews.store.engine)
    desa = [r.code for r in regions.within(KABUPATEN, 10)]
    reviewer = reviews.add_user("bench-reviewer", "reviewer", hash_password(PASSWORD))
    submissions, fields, review_rows, corrections = [], [], [], []
    sid = 0
    for i in range(count):
        place = dict(desa=desa[i % len(desa)], tps=i // len(desa) + 1, election="bupati")
        for older in ([True] if i % 10 == 0 else []) + [False]:
            sid += 1
            submissions.append(dict(id=sid, photos_key=hashlib.sha256(f"bench-{sid}".encode()).hexdigest(),
                                    submission=f"{place['desa']}/TPS-{place['tps']:03d}/{sid}", template="kwk-bupati-3",
                                    status=rng.choice(["ok", "ok", "review", "rejected"]), reasons=[], checks=[],
                                    timings_ms={}, schema_version=5, **place))
            fields += [dict(submission_id=sid, field_id=f, value=v, confidence=0.99, status="ok", reasons=[], digits=[],
                            alternatives=[], page=3) for f, v in _read(rng).items()]
        if i % 10 < 4:
            review_rows.append(dict(submission_id=sid, state="verified", verified_by=reviewer.id,
                                    verified_at=VERIFIED + timedelta(seconds=i)))
            if i % 100 < 4:
                corrections.append(dict(submission_id=sid, field_id="suara_paslon_1", old_value=0, new_value=7,
                                        reason="bench", user_id=reviewer.id))
    with reviews.store.engine.begin() as connection:
        for table, rows in ((SubmissionRow, submissions), (FieldRow, fields), (ReviewRow, review_rows),
                            (CorrectionRow, corrections)):
            _insert(connection, table, rows)
    regions.load_tps_counts(dict(Counter(s["desa"] for s in submissions if s["id"] % 11)))
    if reviews.store.engine.dialect.name == "postgresql":
        with reviews.store.engine.begin() as connection:  # what autovacuum does soon after a bulk load
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - start, len(desa)


def timed(run: Callable[[], object], runs: int) -> str:
    run()  # caches warm, connections open: not what is measured
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return f"{statistics.median(times):7.1f} / {max(times):7.1f}"


def served(client: TestClient, path: str, runs: int, before: Callable[[], None] = lambda: None) -> str:
    """Server time of `path`: median / max ms of `runs` requests, `before` run ahead of each (and of a warm-up)."""
    before()
    server_ms(client, path)
    times = []
    for _ in range(runs):
        before()
        times.append(server_ms(client, path))
    return f"{statistics.median(times):7.1f} / {max(times):7.1f}"


def bench(url: str, label: str, count: int, runs: int, store_dir: Path) -> None:
    app = create_app(url, store_dir, secret="bench")
    app.state.public_rate = TokenBuckets(rate=1e6, burst=10**6)  # one client asking hundreds of times: not limited
    reviews: Reviews = app.state.reviews
    seconds, desa = fill(reviews, count)
    print(f"\n{label}: {count:,} TPS over the {desa} kelurahan/desa of Kabupaten Bandung stored in {seconds:.1f} s")
    print(f"  {'level (rows inside region)':<34} {'recap(): median / max ms':>26} {'/rekap page':>18} "
          f"{'/publik uncached':>18} {'/publik cached':>18}")
    uncached, cached = app.state.public_cache.clear, lambda: None
    with TestClient(app) as client:
        page = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        client.post("/login", data={"name": "bench-reviewer", "password": PASSWORD, "csrf": csrf})
        for level, code, public in STEPS:
            rows = len(recap(reviews.store, app.state.regions, "bupati", level, code).rows)
            function = timed(lambda: recap(reviews.store, app.state.regions, "bupati", level, code), runs)
            web = served(client, f"/rekap?election=bupati&level={level}&region={code}", runs)
            fresh, kept = (served(client, public, runs, before) if public else "" for before in (uncached, cached))
            print(f"  {level + ' in ' + (code or 'Indonesia') + f' ({rows})':<34} {function:>26} {web:>18} "
                  f"{fresh:>18} {kept:>18}")
        number = next(t.number for t in desa_tps(reviews.store, "bupati", DESA) if t.verified)
        for what, public in ((f"TPS of desa {DESA}", f"/publik/bupati/{DESA}"),
                             (f"TPS {number} of desa {DESA}", f"/publik/bupati/{DESA}/tps/{number}")):
            fresh, kept = (served(client, public, runs, before) for before in (uncached, cached))
            print(f"  {what:<34} {'':>26} {'':>18} {fresh:>18} {kept:>18}")
        print(f"  {'review queue page (first 100)':<34} {'':>26} {served(client, '/queue', runs):>18}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tps", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="formc-recap-bench-") as tmp:
        bench(default_url(Path(tmp) / "bench.db"), "SQLite", args.tps, args.runs, Path(tmp) / "store")
        if args.no_postgres:
            return
        try:
            with postgres_server() as server:
                bench(server.url, "PostgreSQL", args.tps, args.runs, Path(tmp) / "store")
        except ServerUnavailable as exc:
            print(f"\nPostgreSQL: not measured ({exc})")


if __name__ == "__main__":
    main()

"""Throughput and accuracy of `formc batch` beside bare JPEG decoding of the same photos on the same cores.

    python bench/batch_bench.py --count 1000 [--workers N] [--data DIR] [--sets ours strangers]

Per set, `--count` phone submissions of 12 MP photos (three-page templates in turn; kept in DATA/<set>
and reused when complete): `ours`, written by `formc synth`'s writers (seed 7); `strangers`, by the
held-out writers of bench/strangers_bench.py (needs ../shared/data). Then, in one run per set: bare
decoding of every photo (OpenCV, colour and greyscale, the same worker count, photos read from disk
as the batch reads them), `run_batch` over the same folder into a fresh JSONL, and bare decoding
again (machines here are noisy: the decode rate is the mean of the two passes). Prints photos/s of
each and the ratio, the stages' mean ms per photo inside the batch against one bare greyscale decode
(and the most one submission spent in each), then the batch's accuracy against the truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.eval.score import evaluate_results, load_results  # noqa: E402
from ocr.run.batch import run_batch  # noqa: E402
from ocr.run.inputs import find_submissions  # noqa: E402
from ocr.run.local import local_engine  # noqa: E402
from ocr.synth.job import SynthJob, synthesize  # noqa: E402
from ocr.templates.catalog import load_templates  # noqa: E402

FLAGS = {"colour": cv2.IMREAD_COLOR, "grey": cv2.IMREAD_GRAYSCALE}


def _decode_files(args: tuple[list[str], int]) -> int:
    paths, flag = args
    cv2.setNumThreads(1)  # one photo per core, as the batch's workers do
    for path in paths:
        cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), flag)
    return len(paths)


def decode_rate(paths: list[str], workers: int, flag: int) -> float:
    """Photos/s of bare decoding with `workers` processes (pool start excluded, as it is tiny against the work)."""
    chunks = [(paths[i::workers * 8], flag) for i in range(workers * 8)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_decode_files, [([], flag)] * workers))  # workers started before the clock
        start = time.perf_counter()
        done = sum(pool.map(_decode_files, chunks))
        return done / (time.perf_counter() - start)


def make_data(out: Path, count: int, workers: int, writers: str) -> None:
    """`count` three-page submissions in turn over the templates, kept in `out` and reused when complete: written by
    `formc synth`'s own writers (seed 7) or by the held-out strangers of bench/strangers_bench.py (needs
    ../shared/data)."""
    ids = sorted(t.id for t in load_templates().values() if len(t.pages) == 3)
    if writers == "ours":
        per = {t: count // len(ids) + (i < count % len(ids)) for i, t in enumerate(ids)}
        for template_id, n in per.items():
            folder = out / template_id
            if n and any(not (folder / f"tps-{i:04d}" / "truth.json").exists() for i in range(1, n + 1)):
                list(synthesize(SynthJob(template_id, n, folder, seed=7, profile="phone", workers=workers,
                                         megapixels=12.0)))
        return
    from bench.strangers_bench import SETS, _init, bank_of, write_one_tps

    jobs = [("strangers", ids[i % len(ids)], i + 1, False, out / ids[i % len(ids)]) for i in range(count)]
    jobs = [j for j in jobs if not (j[4] / f"tps-{j[2]:04d}" / "truth.json").exists()]
    if jobs:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                                 initargs=(bank_of(SETS["strangers"]),)) as pool:
            list(pool.map(write_one_tps, *zip(*jobs), chunksize=2))


def bench_set(name: str, folder: Path, count: int, workers: int) -> None:
    """Bare decoding, the batch, bare decoding again, on one set of submissions; the rates and the per-stage table."""
    start = time.perf_counter()
    make_data(folder, count, workers, name)
    made = time.perf_counter() - start
    found = find_submissions(folder)
    paths = [ref.path for sub in found.submissions for ref in sub.photos]
    megapixels = np.mean([np.prod(cv2.imread(p, cv2.IMREAD_REDUCED_GRAYSCALE_8).shape) * 64 / 1e6 for p in paths[:30]])
    megabytes = np.mean([os.path.getsize(p) for p in paths]) / 1e6
    print(f"\n{name} writers: {len(found.submissions)} submissions, {len(paths)} photos (~{megapixels:.1f} MP, "
          f"{megabytes:.1f} MB mean) in {folder} (made in {made:.0f} s); {workers} worker processes")
    before = {kind: decode_rate(paths, workers, flag) for kind, flag in FLAGS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        summary = run_batch(found.submissions, out, local_engine(workers))
        results = load_results(out)
    after = {kind: decode_rate(paths, workers, flag) for kind, flag in FLAGS.items()}
    rates = {kind: (before[kind] + after[kind]) / 2 for kind in FLAGS}
    print("what | photos/s | formc batch / it")
    print(f"formc batch (read, align, classify, rules, JSONL) | {summary.photos_per_s:.2f} | 1.00")
    for kind in FLAGS:
        print(f"bare decode, {kind} (passes {before[kind]:.1f} and {after[kind]:.1f}) | {rates[kind]:.2f} | "
              f"{summary.photos_per_s / rates[kind]:.2f}")
    photos = sum(len(r.pages) for r in results)  # per photo, whatever the templates' page counts
    grey_ms = workers * 1000 / rates["grey"]  # one process's bare greyscale decode of one photo
    print(f"stage | ms per photo (mean) | x bare greyscale decode ({grey_ms:.1f} ms) | max ms a submission")
    for stage in results[0].timings_ms:
        per = [r.timings_ms.get(stage, 0.0) for r in results]
        print(f"{stage} | {sum(per) / photos:.1f} | {sum(per) / photos / grey_ms:.2f} | {max(per):.0f}")
    ev = evaluate_results(results, folder)
    print(f"accuracy: {ev.accuracy:.4%} of {ev.emitted} emitted fields; silently wrong {ev.silent} of {ev.fields} "
          f"({ev.silent_rate:.4%}); submissions ok {ev.share('ok'):.1%}, review {ev.share('review'):.1%}, "
          f"rejected {ev.share('rejected'):.1%}, error {ev.share('error'):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="submissions per set")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, default=Path("/tmp/formc-batch-bench"),
                        help="the sets are kept in DATA/<set> and reused")
    parser.add_argument("--sets", nargs="+", choices=("ours", "strangers"), default=["ours", "strangers"])
    args = parser.parse_args()
    for name in args.sets:
        bench_set(name, args.data / name, args.count, args.workers)


if __name__ == "__main__":
    main()

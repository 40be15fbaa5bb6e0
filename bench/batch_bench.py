"""Throughput and accuracy of `formc batch` beside bare JPEG decoding of the same photos on the same cores.

    python bench/batch_bench.py --count 1000 [--workers N] [--data DIR]

Makes `--count` phone submissions of 12 MP photos with `formc synth` (three-page templates in turn,
seed 7; kept in --data and reused when complete), or reads any folder of submissions with
truth.json. Then, in one run: bare decoding of every photo (OpenCV, colour and greyscale, the same
worker count, photos read from disk as the batch reads them), `run_batch` over the same folder into
a fresh JSONL, and bare decoding again (machines here are noisy: the decode rate is the mean of the
two passes). Prints photos/s of each and the ratio, then the batch's accuracy against the truth.
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


def make_data(out: Path, count: int, workers: int) -> None:
    ids = sorted(t.id for t in load_templates().values() if len(t.pages) == 3)
    per = {t: count // len(ids) + (i < count % len(ids)) for i, t in enumerate(ids)}
    for template_id, n in per.items():
        folder = out / template_id
        if n and any(not (folder / f"tps-{i:04d}" / "truth.json").exists() for i in range(1, n + 1)):
            list(synthesize(SynthJob(template_id, n, folder, seed=7, profile="phone", workers=workers, megapixels=12.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, default=Path("/tmp/formc-batch-bench"))
    args = parser.parse_args()
    start = time.perf_counter()
    make_data(args.data, args.count, args.workers)
    made = time.perf_counter() - start
    found = find_submissions(args.data)
    paths = [ref.path for sub in found.submissions for ref in sub.photos]
    megapixels = np.mean([np.prod(cv2.imread(p, cv2.IMREAD_REDUCED_GRAYSCALE_8).shape) * 64 / 1e6 for p in paths[:30]])
    megabytes = np.mean([os.path.getsize(p) for p in paths]) / 1e6
    print(f"{len(found.submissions)} submissions, {len(paths)} photos (~{megapixels:.1f} MP, {megabytes:.1f} MB mean) "
          f"in {args.data} (made in {made:.0f} s); {args.workers} worker processes")
    before = {name: decode_rate(paths, args.workers, flag) for name, flag in FLAGS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        summary = run_batch(found.submissions, out, local_engine(args.workers))
        results = load_results(out)
    after = {name: decode_rate(paths, args.workers, flag) for name, flag in FLAGS.items()}
    print("what | photos/s | formc batch / it")
    print(f"formc batch (read, align, classify, rules, JSONL) | {summary.photos_per_s:.2f} | 1.00")
    for name in FLAGS:
        rate = (before[name] + after[name]) / 2
        print(f"bare decode, {name} (passes {before[name]:.1f} and {after[name]:.1f}) | {rate:.2f} | "
              f"{summary.photos_per_s / rate:.2f}")
    ev = evaluate_results(results, args.data)
    photos = sum(len(r.pages) for r in results)  # per photo, whatever the templates' page counts
    timings = {k: sum(r.timings_ms.get(k, 0.0) for r in results) / photos for k in results[0].timings_ms}
    print("mean ms per photo inside the batch: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"accuracy: {ev.accuracy:.4%} of {ev.emitted} emitted fields; silently wrong {ev.silent} of {ev.fields} "
          f"({ev.silent_rate:.4%}); submissions ok {ev.share('ok'):.1%}, review {ev.share('review'):.1%}, "
          f"rejected {ev.share('rejected'):.1%}, error {ev.share('error'):.1%}")


if __name__ == "__main__":
    main()

"""Whole submissions written by strangers: writers no training set holds, beside MNIST's test writers, in one run.

    python bench/strangers_bench.py --count 500 --mnist-count 200 [--workers 2] [--reads FILE]

Each submission is a TPS of a three-page template (in turn), written with one held-out set's glyphs
and photographed `phone` at 12 MP (`formc synth`'s writer, camera and truth), then read through the
door's stages (`ocr.pipeline.read_pages`, what `formc batch` runs, the second look included unless
`--no-second-look`) with the confusion floor off, so
that each policy below is judged on the same reads:
  strangers   the test writers of train/splits.py: CVL valid (test half), FEMNIST held-out writers
              (test half), optdigits' 13 writer-independent writers, Semeion; their own 1s and 7s
  mnist-test  MNIST's test split, writer styles drawn as `formc synth` draws them (in-distribution)
  calibration the calibration writers of train/splits.py (CVL valid and FEMNIST held-out, the other halves;
              `--calibration-count`, default none): never trained on, never measured on, what the reader's
              thresholds are chosen on
A share `--inconsistent` of them is written with an honest arithmetic slip (must go to review).
Prints, per set, for several confusion floors (Policy.floor_residual; None: none): field accuracy of the emitted values,
silently wrong fields (emitted as ok/corrected in an ok submission, not what is written),
submissions to review, inconsistent ones to review; then the silent-vs-review curve over the ok
margin (corrected margin = ok + 2). Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.decode_bench import decode_ms, decoded, evaluate  # noqa: E402
from ocr.pipeline import PhotoInput, ReaderSettings, classifier, read_pages  # noqa: E402
from ocr.reader.verdict import Policy  # noqa: E402
from ocr.synth.handwriting import GlyphBank  # noqa: E402
from ocr.synth.job import SynthJob, synthesize_tps  # noqa: E402
from ocr.templates.catalog import get_template, load_templates  # noqa: E402
from train.splits import glyphs  # noqa: E402

SETS = {"strangers": ("cvl-test", "femnist-test", "optdigits-test", "semeion"), "mnist-test": ("mnist-test",),
        "calibration": ("cvl-calib", "femnist-calib")}
OWN_HANDS = (("flags_ones", False), ("crosses_sevens", False))  # held-out writers write their 1s and 7s their way
SEEDS = {"strangers": 16001, "mnist-test": 16002, "calibration": 16003}
_bank: GlyphBank | None = None


def bank_of(names: tuple[str, ...]) -> GlyphBank:
    bank = GlyphBank(source="+".join(names))
    for name in names:
        g = glyphs(name)
        for label in sorted(set(g.labels.tolist())):
            bank.add(label, [x for x, lab in zip(g.x, g.labels) if lab == label])
    return bank


def _init(bank: GlyphBank) -> None:
    global _bank
    _bank = bank
    cv2.setNumThreads(1)


def write_one_tps(set_name: str, template_id: str, index: int, inconsistent: bool, out: Path) -> dict:
    """TPS `index` of `set_name` synthesised with the worker's bank into `out` (a folder with truth.json and its
    12 MP phone photos); its truth."""
    style = OWN_HANDS if set_name != "mnist-test" else ()
    job = SynthJob(template_id, 1, out, seed=SEEDS[set_name], profile="phone", style=style, megapixels=12.0)
    return synthesize_tps(get_template(template_id), index, job, _bank, inconsistent)


def read_one_tps(set_name: str, template_id: str, index: int, inconsistent: bool,
                 model: Path | None = None, second_look: bool = True) -> tuple[dict, object]:
    """Synthesise TPS `index` with the worker's bank, read its photos (floor off); (truth, read) without photos."""
    with tempfile.TemporaryDirectory(prefix="formc-strangers-") as tmp:
        truth = write_one_tps(set_name, template_id, index, inconsistent, Path(tmp))
        folder = Path(tmp) / truth["submission"]
        photos = [PhotoInput(name, (folder / name).read_bytes(), f"{i:064x}")
                  for i, name in enumerate(truth["pages"].values())]
        read = read_pages(photos, tuple(load_templates().values()),
                          ReaderSettings(policy=Policy(floor_residual=None), model=model, second_look=second_look))
    for page in read.pages:
        page.alignment = page.photo = None  # the template and the 12 MP photo would be pickled once per page
    read.template = None
    return truth, read


def read_set(set_name: str, count: int, inconsistent: float, workers: int, model: Path | None = None,
             second_look: bool = True) -> list:
    ids = sorted(t.id for t in load_templates().values() if len(t.pages) == 3)
    slips = set(np.random.default_rng([SEEDS[set_name], 0x1C0]).choice(count, round(inconsistent * count),
                                                                        replace=False).tolist())
    jobs = [(set_name, ids[i % len(ids)], i + 1, i in slips, model, second_look) for i in range(count)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                             initargs=(bank_of(SETS[set_name]),)) as pool:
        return list(pool.map(read_one_tps, *zip(*jobs), chunksize=2))


FLOORS = (None, 1e-4, 1e-3, 3e-3)  # Policy.floor_residual values compared (None: no floor)
MARGINS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


def with_floor(results: list, floor: float | None, model: Path | None = None) -> list:
    """The same reads with every box's probabilities floored (bubbles fused again after the floor) or as read."""
    if floor is None:
        return results
    reader = classifier(1, model)
    out = []
    for truth, read in results:
        read = replace(read, fields={f: replace(r) for f, r in read.fields.items()})
        for r in read.fields.values():
            raw = r.probs if r.bubbles is None else r.probs / np.maximum(r.bubbles, 1e-300)
            r.set_probs(reader.floored(raw / raw.sum(axis=1, keepdims=True), floor))
        out.append((truth, read))
    return out


def report(name: str, results: list, floors: tuple, model: Path | None) -> None:
    print(f"\n{name}: {len(results)} submissions ({sum(not t['consistent'] for t, _ in results)} with a slip), "
          f"{sum(len(t['pages']) for t, _ in results)} photos")
    print("floor residual | tally marks | field accuracy (emitted) | silently wrong fields | submissions to review | "
          "slips to review")
    curves = {}
    for floor in floors:
        floored = with_floor(results, floor, model)
        for use_tally in (True, False):
            policy = replace(Policy(), floor_residual=floor, use_tally=use_tally)
            joints = decoded(floored, policy)
            m = evaluate(floored, joints, policy)
            print(f"{floor} | {'on' if use_tally else 'off'} | {m['accuracy']:.4%} | {m['silent']:.4%} "
                  f"({m['silent_n']} of {m['fields']}) | {m['review']:.2%} | {m['inconsistent_review']:.1%} of "
                  f"{m['inconsistent']} | {decode_ms(joints)}")
            wide = decoded(floored, replace(policy, corrected_margin=max(MARGINS) + 2))  # margins as far as the curve goes
            curves[floor, use_tally] = [evaluate(floored, wide, replace(policy, ok_margin=ok, corrected_margin=ok + 2))
                                        for ok in MARGINS]
    print("curve, silently wrong fields / submissions to review: ok margin (corrected = ok + 2) | "
          + " | ".join(f"floor {f}, tally {'on' if t else 'off'}" for f, t in curves))
    for k, ok in enumerate(MARGINS):
        print(f"{ok:.0f} | " + " | ".join(f"{c[k]['silent_n']} / {c[k]['review']:.1%}" for c in curves.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500, help="submissions by the held-out writers")
    parser.add_argument("--mnist-count", type=int, default=200, help="submissions by MNIST's test writers")
    parser.add_argument("--calibration-count", type=int, default=0,
                        help="submissions by the calibration writers (what the reader's thresholds are chosen on)")
    parser.add_argument("--inconsistent", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reads", type=Path, help="pickle of the reads: written after reading, reused when present")
    parser.add_argument("--model", type=Path, help="a digit model folder (digits.onnx + digits.json); default: shipped")
    parser.add_argument("--no-second-look", dest="second_look", action="store_false",
                        help="read without the second look at a doubtful form's boxes (ReaderSettings.second_look)")
    parser.add_argument("--floors", type=lambda v: None if v == "none" else float(v), nargs="+", default=list(FLOORS),
                        help="Policy.floor_residual values to judge with ('none': no floor)")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.reads and args.reads.exists():
        reads = pickle.loads(args.reads.read_bytes())
    else:
        reads = {name: read_set(name, n, args.inconsistent, args.workers, args.model, args.second_look)
                 for name, n in (("strangers", args.count), ("mnist-test", args.mnist_count),
                                 ("calibration", args.calibration_count)) if n}
        if args.reads:
            args.reads.write_bytes(pickle.dumps(reads))
    print(f"made and read in {time.perf_counter() - start:.0f} s with {args.workers} processes; "
          f"model {classifier(1, args.model).version}; second look {'on' if args.second_look else 'off'}")
    for name, results in reads.items():
        report(name, results, tuple(args.floors), args.model)


if __name__ == "__main__":
    main()

"""Make labelled box crops for the digit classifier: synthetic TPS read back through the real aligner.

    python train/make_crops.py --out .traindata/crops --tps 3000 --seed 1 --workers 16 \\
        --handwriting ../shared/data/mnist.npz ../shared/data/semeion.npz \\
                      ../shared/data/optdigits32.npz ../shared/data/comnist_letters_x.npz

Each TPS draws its template (every shipped one, PPWP more often) and camera profile from
(seed, index); one compressed shard per worker chunk: crops (n, 48, 48) uint8, class labels.
Only the training splits of the handwriting archives are used (x/y or x_train/y_train), so
MNIST's test split stays unseen for bench/digits_bench.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr.synth.crops import CropSet, tps_crops  # noqa: E402
from ocr.synth.handwriting import GlyphBank, load_bank  # noqa: E402
from ocr.synth.job import SynthJob  # noqa: E402
from ocr.templates.catalog import load_templates  # noqa: E402

PROFILE_MIX = {"phone": 0.6, "harsh": 0.25, "scan": 0.15}
PPWP_SHARE = 0.3  # the 2024 guide boxes are one template among 19 but half of what officers will photograph

_bank: GlyphBank | None = None


def _init(bank: GlyphBank) -> None:
    global _bank
    _bank = bank
    cv2.setNumThreads(1)  # one process per core already


def plan(seed: int, index: int, template_ids: list[str]) -> tuple[str, str]:
    """(template id, camera profile) of TPS `index`."""
    rng = np.random.default_rng([seed, index, 0xC0])
    kwk = [t for t in template_ids if not t.startswith("ppwp")]
    template = "ppwp-2024" if rng.random() < PPWP_SHARE else str(rng.choice(kwk))
    profile = str(rng.choice(list(PROFILE_MIX), p=list(PROFILE_MIX.values())))
    return template, profile


def make_chunk(seed: int, indices: list[int], out: Path) -> tuple[int, int]:
    template_ids = sorted(load_templates())
    parts = []
    for index in indices:
        template, profile = plan(seed, index, template_ids)
        job = SynthJob(template_id=template, count=1, out_dir=out, seed=seed, profile=profile)
        parts.append(tps_crops(job, template, index, _bank))
    crops = CropSet.concat(parts, 48)
    partial = out / f"partial-{indices[0]:06d}.npz"
    crops.save(partial)
    partial.replace(out / f"shard-{indices[0]:06d}.npz")  # a run stopped at its deadline leaves only whole shards
    return len(crops.labels), crops.refused_pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tps", type=int, default=3000)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=25)
    parser.add_argument("--handwriting", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bank = load_bank(args.handwriting or None)
    indices = list(range(args.first, args.first + args.tps))
    chunks = [indices[i: i + args.chunk] for i in range(0, len(indices), args.chunk)]
    start, total, refused = time.perf_counter(), 0, 0
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(bank,)) as pool:
        for future in as_completed([pool.submit(make_chunk, args.seed, c, args.out) for c in chunks]):
            n, r = future.result()
            total, refused = total + n, refused + r
    print(f"{total} crops from {args.tps} TPS ({refused} pages refused by the aligner) in "
          f"{time.perf_counter() - start:.0f} s; handwriting: {bank.source}", flush=True)


if __name__ == "__main__":
    main()

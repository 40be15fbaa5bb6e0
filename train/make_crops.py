"""Make labelled box crops for the digit classifier: synthetic TPS read back through the real aligner.

    python train/make_crops.py --out .traindata/crops --tps 3000 --seed 1 --workers 16 \\
        --handwriting ../shared/data/mnist.npz ../shared/data/semeion.npz \\
                      ../shared/data/optdigits32.npz ../shared/data/comnist_letters_x.npz

Each TPS draws its template (every shipped one, PPWP more often) and camera profile from
(seed, index); one compressed shard per worker chunk: crops (n, 48, 48) uint8, class labels.
Only the training splits of the handwriting archives are used (x/y or x_train/y_train), so
MNIST's test split stays unseen for bench/digits_bench.py.

Writer-disjoint sets (train/splits.py) instead of archives, with new writers made by restyling:

    python train/make_crops.py --out /tmp/d/train --tps 2000 --seed 1 --workers 16 \
        --splits mnist=0.35 cvl=0.3 femnist=0.2 optdigits=0.15 comnist-x=1 --restyle --deadline 170
    python train/make_crops.py --out /tmp/d/cvl-calib --tps 40 --seed 7 --splits cvl-calib --profile phone --own-hands

`--restyle` restyles every glyph (train/styles.py) and widens each TPS's writer style (glyph size
0.45-0.95 of the box, up to 30 % of glyphs thrown across the frame); `--own-hands` keeps the writers'
own 1s and 7s (no flag or bar added: held-out sets measure the hands as written). `--deadline`
stops handing out chunks after that many seconds; the shards made so far are whole.
"""

from __future__ import annotations

import argparse
import multiprocessing
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
from train.splits import DATA, glyphs  # noqa: E402
from train.styles import StyledBank  # noqa: E402

# Workers are spawned, not forked: building a bank runs OpenCV in this process, and a fork taken while its
# thread pool holds a lock hangs the worker at its first OpenCV call.
_SPAWN = multiprocessing.get_context("spawn")
PROFILE_MIX = {"phone": 0.6, "harsh": 0.25, "scan": 0.15}
PPWP_SHARE = 0.3  # the 2024 guide boxes are one template among 19 but half of what officers will photograph

_bank: GlyphBank | None = None
_options: dict = {}


def _init(bank: GlyphBank, options: dict | None = None) -> None:
    global _bank, _options
    _bank, _options = bank, options or {}
    cv2.setNumThreads(1)  # one process per core already


def plan(seed: int, index: int, template_ids: list[str], profile: str | None = None) -> tuple[str, str]:
    """(template id, camera profile) of TPS `index`."""
    rng = np.random.default_rng([seed, index, 0xC0])
    kwk = [t for t in template_ids if not t.startswith("ppwp")]
    template = "ppwp-2024" if rng.random() < PPWP_SHARE else str(rng.choice(kwk))
    drawn = str(rng.choice(list(PROFILE_MIX), p=list(PROFILE_MIX.values())))
    return template, profile or drawn


def writer_style(seed: int, index: int, restyle: bool, own_hands: bool) -> tuple[tuple[str, object], ...]:
    """WriterStyle fields forced for TPS `index`: wider size and sloppiness when restyling; own 1s and 7s."""
    style: list[tuple[str, object]] = []
    if restyle:
        rng = np.random.default_rng([seed, index, 0x57])
        style += [("size", float(rng.uniform(0.45, 0.95))), ("sloppy", float(rng.uniform(0.0, 0.3)))]
    if own_hands:
        style += [("flags_ones", False), ("crosses_sevens", False)]
    return tuple(style)


def make_chunk(seed: int, indices: list[int], out: Path) -> tuple[int, int]:
    template_ids = sorted(load_templates())
    parts = []
    for index in indices:
        template, profile = plan(seed, index, template_ids, _options.get("profile"))
        style = writer_style(seed, index, _options.get("restyle", False), _options.get("own_hands", False))
        job = SynthJob(template_id=template, count=1, out_dir=out, seed=seed, profile=profile, style=style)
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
    parser.add_argument("--splits", nargs="*", default=[], metavar="NAME[=WEIGHT]",
                        help="writer-disjoint sets of train/splits.py instead of --handwriting archives")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--restyle", action="store_true", help="new writers: restyle glyphs, widen size/sloppiness")
    parser.add_argument("--procedural", type=float, default=0.08, help="share of stroke-model digits with --restyle")
    parser.add_argument("--own-hands", action="store_true", help="no flag on 1s, no bar on 7s (held-out sets)")
    parser.add_argument("--profile", choices=sorted(PROFILE_MIX), help="every photo with this camera profile")
    parser.add_argument("--deadline", type=float, default=0, help="stop starting chunks after this many seconds")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bank = split_bank(args.splits, args.data, args.restyle, args.procedural) if args.splits else load_bank(
        args.handwriting or None)
    options = {"profile": args.profile, "restyle": args.restyle, "own_hands": args.own_hands}
    indices = list(range(args.first, args.first + args.tps))
    chunks = [indices[i: i + args.chunk] for i in range(0, len(indices), args.chunk)]
    start, total, refused, done = time.perf_counter(), 0, 0, 0
    with ProcessPoolExecutor(args.workers, mp_context=_SPAWN, initializer=_init, initargs=(bank, options)) as pool:
        futures = [pool.submit(make_chunk, args.seed, c, args.out) for c in chunks]
        for future in as_completed(futures):
            if future.cancelled():
                continue
            n, r = future.result()
            total, refused, done = total + n, refused + r, done + 1
            if args.deadline and time.perf_counter() - start > args.deadline:
                cancelled = sum(f.cancel() for f in futures)
                if cancelled:
                    print(f"deadline: {cancelled} chunks not started", flush=True)
    made = sum(1 for f in futures if not f.cancelled())
    print(f"{total} crops from {made} chunks of {args.chunk} TPS ({refused} pages refused by the aligner) in "
          f"{time.perf_counter() - start:.0f} s; handwriting: {bank.source}", flush=True)


def split_bank(specs: list[str], data: Path, restyle: bool, procedural: float) -> StyledBank:
    """A bank of the named train/splits.py sets ("name" or "name=weight")."""
    bank = StyledBank(augment=restyle, procedural=procedural if restyle else 0.0)
    for spec in specs:
        name, _, weight = spec.partition("=")
        g = glyphs(name, data)
        bank.add_set(name, g.x, g.labels, float(weight or 1))
    missing = [str(d) for d in range(10) if bank.count(str(d)) == 0]
    if missing:
        raise SystemExit(f"splits {specs} have no examples of digits {missing}")
    return bank


if __name__ == "__main__":
    main()

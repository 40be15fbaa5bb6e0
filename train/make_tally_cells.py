"""Make labelled tally-cell windows: synthetic TPS photographed, aligned by the real reader, cells cut as it cuts them.

    python train/make_tally_cells.py --out /tmp/tally/train --tps 400 --seed 1 --workers 2

Each TPS draws its template (every shipped one with a tally grid) and camera profile from (seed,
index); every cell of every tally grid on its pages is cut by `ocr.reader.tally.grid_windows` and
labelled from truth.json (0..5 marks, or struck: no mark and a strike line across it); `--practice`
draws the grids as training sheets (every cell a random number of marks: a partial group is one
cell per row on a real form). Cells of
unused rows without ink are kept at `--keep-empty` of their number (they are most of a grid and
never reach the network). One compressed shard per TPS chunk: windows (n, 44, 64) uint8, labels.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr.reader.align import PageAlignment, align_page  # noqa: E402
from ocr.reader.decode import decode_photo  # noqa: E402
from ocr.reader.tally import STRUCK_CLASS, grid_windows  # noqa: E402
from ocr.synth.handwriting import load_bank  # noqa: E402
from ocr.synth.job import SynthJob, synthesize_tps  # noqa: E402
from ocr.templates.catalog import load_templates  # noqa: E402

_SPAWN = multiprocessing.get_context("spawn")  # see train/make_crops.py: OpenCV and fork do not mix
PROFILE_MIX = {"phone": 0.6, "harsh": 0.25, "scan": 0.15}


def cell_labels(tally: dict) -> np.ndarray:
    """(rows * cols,) class per cell from a grid's truth: its marks, or STRUCK_CLASS for a struck empty cell."""
    cells, struck = np.array(tally["cells"]), np.array(tally["struck_cells"])
    return np.where((cells == 0) & struck, STRUCK_CLASS, cells).ravel().astype(np.uint8)


def tally_pages(template, truth: dict, folder: Path) -> Iterator[tuple]:
    """(page, photo, alignment or refusal) of each page of a synthetic TPS in `folder` that holds a tally grid."""
    for number, name in truth["pages"].items():
        page = template.page(int(number))
        if page.tally_grids:
            photo = decode_photo((folder / name).read_bytes(), str(folder / name))
            yield page, photo, photo and align_page(photo, (template,), template_id=template.id,
                                                    page_number=int(number))


def tps_cells(seed: int, index: int, bank, keep_empty: float, practice: bool) -> tuple[np.ndarray, np.ndarray]:
    templates = {k: t for k, t in load_templates().items() if any(p.tally_grids for p in t.pages)}
    rng = np.random.default_rng([seed, index, 0x7A11])
    template = templates[str(rng.choice(sorted(templates)))]
    profile = str(rng.choice(list(PROFILE_MIX), p=list(PROFILE_MIX.values())))
    windows, labels = [], []
    with tempfile.TemporaryDirectory(prefix="formc-tally-") as tmp:
        job = SynthJob(template.id, 1, Path(tmp), seed=seed, profile=profile, tally_practice=practice)
        truth = synthesize_tps(template, index, replace(job, first_index=index), bank, False)
        for page, photo, alignment in tally_pages(template, truth, Path(tmp) / truth["submission"]):
            if not isinstance(alignment, PageAlignment):
                continue
            for grid in page.tally_grids:
                w = grid_windows(photo.gray, alignment.page_homography, grid)
                y = cell_labels(truth["tally"][grid.field_id])
                keep = (y != 0) | (rng.random(len(y)) < keep_empty)
                windows.append(w[keep])
                labels.append(y[keep])
    if not windows:
        return np.zeros((0, 44, 64), np.uint8), np.zeros(0, np.uint8)
    return np.concatenate(windows), np.concatenate(labels)


_bank = None


def _init() -> None:
    global _bank
    _bank = load_bank(None)
    cv2.setNumThreads(1)


def _chunk(seed: int, indices: list[int], keep_empty: float, practice: bool, out: Path) -> tuple[int, dict]:
    parts = [tps_cells(seed, i, _bank, keep_empty, practice) for i in indices]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    np.savez_compressed(out, windows=x, labels=y)
    return len(y), {int(k): int(v) for k, v in zip(*np.unique(y, return_counts=True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tps", type=int, default=400)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--keep-empty", type=float, default=0.1)
    ap.add_argument("--practice", action="store_true", help="tally grids as training sheets: every cell random marks")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    indices = list(range(args.first, args.first + args.tps))
    chunks = [indices[i: i + args.chunk] for i in range(0, len(indices), args.chunk)]
    totals: dict[int, int] = {}
    with ProcessPoolExecutor(args.workers, mp_context=_SPAWN, initializer=_init) as pool:
        futures = [pool.submit(_chunk, args.seed, c, args.keep_empty, args.practice, args.out / f"cells-{c[0]:05d}.npz")
                   for c in chunks]
        for f in futures:
            n, counts = f.result()
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
    print(json.dumps({"cells": sum(totals.values()), "per_class": dict(sorted(totals.items()))}))


if __name__ == "__main__":
    main()

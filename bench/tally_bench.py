"""Tally marks: cells, rows and struck rows counted right on held-out phone submissions, and the speed per page.

    python bench/tally_bench.py --count 300 [--seed 900] [--workers 2] [--model DIR] [--real ../shared/real]

Makes `--count` TPS with `formc synth` (every template with a tally grid in turn; seed 900, never
used for training: train/make_tally_cells.py uses seeds 1 and 2), photographs them `phone`,
aligns each tally page with the reader and counts its grids with ocr/reader/tally.py. Prints:
cells whose most probable class is right (all cells, and cells with ink), per class; rows whose
count is right (the most probable count; a full row's 60 for 60 or more; rows struck out as
unused counted as 0), and those
wrong with p >= 0.99; struck rows recognised as struck (by their cells or by the strike line through
their sum boxes); grids without a mark seen as no evidence; the time to count one page's grids on one
core (median, and per 60 cells), beside the same grids counted without looking for that line. `--real`: every row of
the real PPWP 2024 page-2 photos, its count beside the row sum the reader read from its boxes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.pipeline import PhotoInput, ReaderSettings, read_submission  # noqa: E402
from ocr.reader.align import PageAlignment  # noqa: E402
from ocr.reader.tally import CELL_CLASSES, ROW_MAX, STRUCK_CLASS, TallyCounter  # noqa: E402
from ocr.synth.handwriting import load_bank  # noqa: E402
from ocr.synth.job import SynthJob, synthesize_tps  # noqa: E402
from ocr.synth.tally import STRUCK  # noqa: E402
from ocr.templates.catalog import get_template, load_templates  # noqa: E402
from train.make_tally_cells import cell_labels, tally_pages  # noqa: E402

_bank = None
_counter: TallyCounter | None = None


def _init(model: Path | None) -> None:
    global _bank, _counter
    _bank = load_bank(None)
    _counter = TallyCounter(1) if model is None else TallyCounter(1, model)
    cv2.setNumThreads(1)


def one_tps(template_id: str, index: int, seed: int) -> dict:
    """Cell classes (true, read), row counts (true, read, p, status) and page times of one synthetic TPS."""
    template = get_template(template_id)
    out = {"cells": [], "rows": [], "page_ms": [], "marks_ms": [], "page_cells": []}
    with tempfile.TemporaryDirectory(prefix="formc-tally-bench-") as tmp:
        truth = synthesize_tps(template, index, SynthJob(template_id, 1, Path(tmp), seed=seed, profile="phone"),
                               _bank, False)
        for page, photo, alignment in tally_pages(template, truth, Path(tmp) / truth["submission"]):
            if not isinstance(alignment, PageAlignment):
                out["rows"].append(None)  # a refused page: its rows are not counted at all
                continue
            sums = [tuple(alignment.box_rects_mm(f) for f in g.row_field_ids) for g in page.tally_grids]
            t = time.perf_counter()
            for g in page.tally_grids:  # the marks alone, timed beside the same grids with the line
                _counter.read_grid(photo.gray, alignment.page_homography, g)
            t_marks = time.perf_counter()
            rows = [_counter.read_grid(photo.gray, alignment.page_homography, g, s) for g, s in zip(page.tally_grids, sums)]
            out["page_ms"].append((time.perf_counter() - t_marks) * 1000)
            out["marks_ms"].append((t_marks - t) * 1000)
            out["page_cells"].append(sum(g.rows * g.cols for g in page.tally_grids))
            for grid, read in zip(page.tally_grids, rows):
                labels = truth["tally"][grid.field_id]
                true_cells = cell_labels(labels)
                read_cells = np.array([c for row in read for c in row.cells])
                out["cells"].extend(zip(true_cells.tolist(), read_cells.tolist()))
                for true_row, row in zip(labels["rows"], read):
                    out["rows"].append((true_row, row.count, row.p, row.status, not any(n > 0 for n in labels["rows"])))
    return out


def report(parts: list[dict]) -> None:
    cells = np.array([c for p in parts for c in p["cells"]])
    truth, read = cells[:, 0], cells[:, 1]
    inked = (truth != 0) | (read != 0)
    print(f"cells right: {np.mean(truth == read):.4%} of {len(cells)}; cells with marks or strikes (true or read): "
          f"{np.mean(truth[inked] == read[inked]):.4%} of {inked.sum()}")
    marks_only = np.where(truth == STRUCK_CLASS, 0, truth), np.where(read == STRUCK_CLASS, 0, read)
    print(f"cells' mark counts right (struck = 0 marks): {np.mean(marks_only[0] == marks_only[1]):.4%}")
    print("per class: " + ", ".join(f"{CELL_CLASSES[k]} {np.mean(read[truth == k] == k):.2%} ({(truth == k).sum()})"
                                    for k in range(len(CELL_CLASSES)) if (truth == k).any()))
    rows = [r for p in parts for r in p["rows"] if r is not None]
    evidence = [r for r in rows if not r[4]]  # grids with marks
    counted = [r for r in evidence if r[0] != STRUCK]
    ok = [r[1] == r[0] or (r[1] == ROW_MAX and r[0] >= ROW_MAX) for r in counted]  # a full row shows 60 of more
    sure_wrong = sum(not good and r[2] >= 0.99 for r, good in zip(counted, ok))
    print(f"rows counted right: {np.mean(ok):.4%} of {len(counted)} (wrong at p >= 0.99: {sure_wrong}); "
          f"rows with marks: {np.mean([good for r, good in zip(counted, ok) if r[0] > 0]):.4%} of "
          f"{sum(r[0] > 0 for r in counted)}")
    struck = [r for r in evidence if r[0] == STRUCK]
    print(f"struck rows recognised as struck: {np.mean([r[3] == 'struck' for r in struck]):.4%} of {len(struck)}; "
          f"read as 0 (struck or counted 0): {np.mean([r[1] == 0 for r in struck]):.4%}; rows read struck that are "
          f"not: {sum(r[3] == 'struck' and r[0] != STRUCK for r in evidence)}")
    empty = [r for r in rows if r[4]]
    print(f"rows of grids without marks seen as no evidence: {sum(r[3] == 'none' for r in empty)} of {len(empty)}; "
          f"refused pages: {sum(r is None for p in parts for r in p['rows'])}")
    ms = np.array([m for p in parts for m in p["page_ms"]])
    per60 = ms / np.array([c for p in parts for c in p["page_cells"]]) * 60
    marks = np.array([m for p in parts for m in p["marks_ms"]])
    print(f"speed, one core: a page's grids in {np.median(ms):.1f} ms median ({np.percentile(ms, 90):.1f} ms p90), "
          f"{np.median(per60):.2f} ms per 60 cells, over {len(ms)} pages; the same grids without looking for the "
          f"strike line through the sum boxes, timed just before: {np.median(marks):.1f} ms (ratio "
          f"{np.median(ms / marks):.2f})")


def real_pages(real: Path) -> None:
    """Each row's count beside the row sum read from its boxes, on the real PPWP 2024 page-2 photos."""
    templates = tuple(load_templates().values())
    for path in sorted(real.glob("chasilppwp2024-h2-*.jpg")):
        photo = PhotoInput(path.name, path.read_bytes(), "0" * 64)
        result = read_submission([photo], templates, ReaderSettings(), path.stem)
        if not result.fields:
            print(f"{path.name}: {result.pages[0].errors[0].code if result.pages[0].errors else result.status}")
            continue
        for field_id, f in result.fields.items():
            if f.tally is not None:
                print(f"{path.name} {field_id}: tally {f.tally.status} {f.tally.count} (p {f.tally.p:.3f}), "
                      f"boxes read {f.read_value}, emitted {f.value} ({f.status}); cells {' '.join(f.tally.cells)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=900)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", type=Path, help="a folder with tally.onnx + tally.json (default: the shipped one)")
    ap.add_argument("--real", type=Path, help="../shared/real: count the real PPWP 2024 page-2 photos too")
    args = ap.parse_args()
    ids = sorted(t.id for t in load_templates().values() if any(p.tally_grids for p in t.pages))
    jobs = [(ids[i % len(ids)], i + 1, args.seed) for i in range(args.count)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                             initargs=(args.model,)) as pool:
        parts = list(pool.map(one_tps, *zip(*jobs), chunksize=2))
    print(f"{args.count} held-out phone TPS (seed {args.seed}, {len(ids)} templates), made and counted in "
          f"{time.perf_counter() - start:.0f} s")
    report(parts)
    if args.real:
        real_pages(args.real)


if __name__ == "__main__":
    main()

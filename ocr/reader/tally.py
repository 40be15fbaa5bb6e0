"""Count the tally marks (turus): an independent reading of each row's count that no handwriting style can bend.

Each cell of a tally grid is cut from the aligned photo with a quarter cell of context on every
side (a strike line that runs on into the next cell is a strike, a fifth stroke that stays inside
is a mark), and a small CNN gives its probabilities over `CELL_CLASSES`: 0..5 marks, or `struck`
(no marks, a strike line through it). A cell with no ink at all is 0 without the network.

A row's count distribution weighs every arrangement of its cells' marks (struck counts as 0), the
arrangements officers make (full groups, then one partial group, then nothing) ten times
likelier than the others (a crossed-out group, a mark out of place). A row is
`struck` when its cells hold no marks and a strike line crosses one of them: the officer
marked it unused, so its row sum is 0 whatever its boxes look like. A grid without any mark (left
empty, or struck out whole) is no evidence at all: never "0 votes".

Geometry: cells from the template's `TallyGrid.rect_mm` (page mm) through the page homography
(page mm -> photo px); windows are sampled at `PX_PER_MM`, x then y.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
import onnxruntime as ort

from ocr.reader.geometry import rectify
from ocr.templates.model import TallyGrid

CELL_CLASSES = ("0", "1", "2", "3", "4", "5", "struck")
STRUCK_CLASS = 6
PX_PER_MM = 2.2  # 0.45 mm strokes stay >= 1 px, uprights 2.4 mm apart stay 5 px apart
INPUT_W, INPUT_H = 64, 44  # network input (px): a cell and a quarter cell around it
CONTEXT = (0.25, 0.15)  # share of the cell's width and height added on each side
INK_SHARE = 0.35  # ink this much darker than the window's paper (as a share of it) counts fully
EMPTY_INK = 0.25  # a cell whose darkest ink (0..1) inside is below this holds nothing
STRUCK_CELLS = 1  # a strike line across one cell of a row without marks: the officer marked it unused
STRUCK_SURE = 0.9  # ... and no mark in it at this probability
IN_ORDER = 10.0  # prior odds of a row marked in order (a crossed-out group breaks it) against any other arrangement
ROW_MAX = 60  # 12 groups of five: a full row may stand for more (the excess written elsewhere)
SHIPPED = resources.files("ocr.reader.models")
TALLY_WEIGHTS = "tally.onnx"  # beside digits.onnx; its calibration in tally.json


@dataclass(frozen=True)
class RowTally:
    """What the marks of one row say about its written sum."""

    field_id: str  # the row-sum field, `<grid field>_baris_<r>`
    status: str  # "counted" | "struck" (unused, 0) | "none" (the grid holds no mark: no evidence)
    counts: tuple[float, ...] = ()  # P(count = k), k = 0..60; k = 60 also stands for more
    cells: tuple[int, ...] = ()  # most probable class per cell (CELL_CLASSES index), for people

    @property
    def count(self) -> int | None:
        return int(np.argmax(self.counts)) if self.status == "counted" else (0 if self.status == "struck" else None)

    @property
    def p(self) -> float:
        """Probability of `count` (1 for a struck row: its value is decided by the strike, not counted)."""
        return float(max(self.counts)) if self.status == "counted" else 1.0

    def count_likelihood(self, floor: float) -> tuple[float, ...]:
        """How well each value 0..60 agrees with the marks (60 also for more), the best 1, none below `floor`: the
        share of miscounts the cells' probabilities do not foresee."""
        top = max(self.counts)
        return tuple(max(p / top, floor) for p in self.counts)

    def agrees(self, value: int) -> bool:
        """Whether a written value is the count (a full row's 60 stands for 60 or more)."""
        return value == self.count or (self.count == ROW_MAX and value >= ROW_MAX)


def grid_windows(gray: np.ndarray, page_homography: np.ndarray, grid: TallyGrid) -> np.ndarray:
    """(rows * cols, INPUT_H, INPUT_W) uint8 windows of the grid's cells, row by row, from the photo's greyscale."""
    x, y, w, h = grid.rect_mm
    cw, ch = w / grid.cols, h / grid.rows
    mx, my = CONTEXT[0] * cw, CONTEXT[1] * ch
    size = (int(np.ceil((w + 2 * mx) * PX_PER_MM)), int(np.ceil((h + 2 * my) * PX_PER_MM)))
    sheet = rectify(gray, page_homography, (x - mx, y - my), size, PX_PER_MM)
    win_w, win_h = (cw + 2 * mx) * PX_PER_MM, (ch + 2 * my) * PX_PER_MM
    out = np.empty((grid.rows * grid.cols, INPUT_H, INPUT_W), np.uint8)
    for r in range(grid.rows):
        for c in range(grid.cols):
            x0, y0 = round(c * cw * PX_PER_MM), round(r * ch * PX_PER_MM)
            window = sheet[y0: y0 + round(win_h), x0: x0 + round(win_w)]
            out[r * grid.cols + c] = cv2.resize(window, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA)
    return out


def ink(windows: np.ndarray) -> np.ndarray:
    """(n, 1, INPUT_H, INPUT_W) float32 ink in 0..1 (paper 0) from uint8 windows: the network's input."""
    n = len(windows)
    flat = windows.reshape(n, -1)
    k = int(0.85 * (flat.shape[1] - 1))
    paper = np.partition(flat, k, axis=1)[:, k].astype(np.float32)[:, None, None]
    out = np.clip((paper - windows) / np.maximum(INK_SHARE * paper, 1.0), 0.0, 1.0)
    return out.astype(np.float32)[:, None]


_INNER = np.zeros((INPUT_H, INPUT_W), bool)  # the cell itself, 1 mm in from its printed lines
_INNER[round(INPUT_H * 0.2): -round(INPUT_H * 0.2), round(INPUT_W * 0.23): -round(INPUT_W * 0.23)] = True


class TallyCounter:
    """The cell classifier (ocr/reader/models/tally.onnx) and its calibration (tally.json)."""

    def __init__(self, threads: int = 1, folder=SHIPPED):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(folder.joinpath(TALLY_WEIGHTS).read_bytes(), options,
                                            providers=["CPUExecutionProvider"])
        self.temperature = float(json.loads(folder.joinpath("tally.json").read_text())["temperature"])

    def cell_probs(self, windows: np.ndarray) -> np.ndarray:
        """(n, 7) probabilities over CELL_CLASSES of uint8 cell windows."""
        x = ink(windows)
        probs = np.zeros((len(x), len(CELL_CLASSES)), np.float64)
        probs[:, 0] = 1.0
        inked = (x[:, 0] * _INNER).max(axis=(1, 2)) >= EMPTY_INK
        if inked.any():
            logits = self.session.run(None, {"ink": x[inked]})[0].astype(np.float64) / self.temperature
            logits -= logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            probs[inked] = e / e.sum(axis=1, keepdims=True)
        return probs

    def read_grid(self, gray: np.ndarray, page_homography: np.ndarray, grid: TallyGrid) -> list[RowTally]:
        """Every row of `grid` on an aligned photo."""
        probs = self.cell_probs(grid_windows(gray, page_homography, grid)).reshape(grid.rows, grid.cols, -1)
        return rows_of(grid, probs)


def row_counts(cells: np.ndarray) -> np.ndarray:
    """P(count = k), k = 0..5 * cols, of one row from its cells' (cols, 7) probabilities: every arrangement of marks
    (cells independent; struck = 0), those officers make (full groups, one partial group, then nothing) IN_ORDER
    times likelier than the rest."""
    marks = cells[:, :6].copy()
    marks[:, 0] += cells[:, STRUCK_CLASS]
    anything = np.array([1.0])
    for cell in marks:
        anything = np.convolve(anything, cell)
    cols = len(marks)
    full_before = np.concatenate([[1.0], np.cumprod(marks[:, 5])])  # [k]: cells 0..k-1 all hold five
    empty_from = np.concatenate([np.cumprod(marks[::-1, 0])[::-1], [1.0]])  # [k]: cells k.. all hold none
    ordered = np.zeros_like(anything)
    for k in range(cols + 1):
        ordered[5 * k] += full_before[k] * empty_from[k]
        if k < cols:
            ordered[5 * k + 1: 5 * k + 5] += full_before[k] * marks[k, 1:5] * empty_from[k + 1]
    dist = anything + (IN_ORDER - 1) * ordered  # ordered arrangements are among `anything` already
    return dist / dist.sum()


def rows_of(grid: TallyGrid, probs: np.ndarray) -> list[RowTally]:
    """Rows from the cells' (rows, cols, 7) probabilities (see the module docstring)."""
    top = probs.argmax(axis=2)
    counts = [row_counts(probs[r]) for r in range(grid.rows)]
    if all(dist[0] > 0.5 for dist in counts):  # no mark anywhere: an empty or struck-out grid says nothing
        return [RowTally(f, "none", cells=tuple(int(c) for c in top[r])) for r, f in enumerate(grid.row_field_ids)]
    out = []
    for r, field_id in enumerate(grid.row_field_ids):
        cells = tuple(int(c) for c in top[r])
        struck = all(c in (0, STRUCK_CLASS) for c in cells) and cells.count(STRUCK_CLASS) >= STRUCK_CELLS
        out.append(RowTally(field_id, "struck", cells=cells) if struck and counts[r][0] >= STRUCK_SURE else
                   RowTally(field_id, "counted", tuple(float(p) for p in counts[r]), cells))
    return out


@lru_cache(maxsize=2)
def counter(threads: int = 1) -> TallyCounter:
    """The shipped tally counter, loaded once per process."""
    return TallyCounter(threads)

"""Count the tally marks (turus): an independent reading of each row's count that no handwriting style can bend.

Each cell of a tally grid is cut from the aligned photo with a quarter cell of context on every
side (a strike line that runs on into the next cell is a strike, a fifth stroke that stays inside
is a mark), and a small CNN gives its probabilities over `CELL_CLASSES`: 0..5 marks, or `struck`
(no marks, a strike line through it). A cell with no ink at all is 0 without the network.

A row's count distribution weighs every arrangement of its cells' marks (struck counts as 0), the
arrangements officers make (full groups, then one partial group, then nothing) ten times
likelier than the others (a crossed-out group, a mark out of place). A row is
`struck` when its cells hold no marks and a strike line crosses one of them, or when the one line
officers draw through the sum boxes of the unused rows crosses its sum boxes and its cells are not
sure of a count (`struck_sum_rows`: a classifier of single boxes sees a slash and reads 1): the
officer marked it unused, so its row sum is 0 whatever its boxes look like. Where the cells are
sure of a count, the line and the marks disagree (`sum_struck`: a person decides), unless the marks
hold a group of five, which no strike line draws: then the line was a misreading of the digits.
A grid without any mark (left empty, or struck out whole) is no evidence at all: never "0 votes".

Geometry: cells from the template's `TallyGrid.rect_mm` (page mm) through the page homography
(page mm -> photo px); windows are sampled at `PX_PER_MM`, x then y; the sum boxes where the
aligner placed them (page mm, the bend undone), their column sampled at `SUM_PX_PER_MM`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
import onnxruntime as ort
from skimage.morphology import skeletonize

from ocr.reader.geometry import rectify
from ocr.templates.model import RectMM, TallyGrid

CELL_CLASSES = ("0", "1", "2", "3", "4", "5", "struck")
STRUCK_CLASS = 6
PX_PER_MM = 2.2  # 0.45 mm strokes stay >= 1 px, uprights 2.4 mm apart stay 5 px apart
INPUT_W, INPUT_H = 64, 44  # network input (px): a cell and a quarter cell around it
CONTEXT = (0.25, 0.15)  # share of the cell's width and height added on each side
INK_SHARE = 0.35  # ink this much darker than the window's paper (as a share of it) counts fully
EMPTY_INK = 0.25  # a cell whose darkest ink (0..1) inside is below this holds nothing
STRUCK_CELLS = 1  # a strike line across one cell of a row without marks: the officer marked it unused
STRUCK_SURE = 0.9  # ... and no mark in it at this probability
LINED_SURE = 0.05  # a row whose sum boxes a strike line crosses is struck unless its marks put P(no mark) below this
USED_SURE = 0.99  # ... and its marks against the line (review) unless they hold a group of five at least this surely
IN_ORDER = 10.0  # prior odds of a row marked in order (a crossed-out group breaks it) against any other arrangement
ROW_MAX = 60  # 12 groups of five: a full row may stand for more (the excess written elsewhere)
# A strike line through the row-sum boxes (page mm; a box is 12 x 16 mm): longer than a box is tall, neither along
# the printed frame nor a near-upright 1 over the 1 below it.
SUM_PX_PER_MM = 4.0
STRIKE_MIN_LENGTH = 1.0  # share of a sum box's height
STRIKE_ANGLES = (15.0, 80.0)  # degrees from the horizontal
STRIKE_GAP_MM = 2.5  # a strike line broken where it crosses the frame (removed with it) is one line
STRIKE_STEP_MM = 0.25  # the line is checked for ink at this step
STRIKE_INKED = 0.9  # share of those steps on it: one drawn line, not strokes of two glyphs that happen to line up
STRIKE_PIECE_MM = 3.0  # the shortest piece of ink looked at (a strike cut by the frame leaves longer ones in each box)
STRIKE_IN_BOX_MM = 3.0  # a box is crossed when the line runs this far inside it
STRIKE_TOP_IN_BOX_MM = 6.0  # ... the top row's boxes farther: the line's end may run on into the last row written
SHIPPED = resources.files("ocr.reader.models")
TALLY_WEIGHTS = "tally.onnx"  # beside digits.onnx; its calibration in tally.json


@dataclass(frozen=True)
class RowTally:
    """What the marks of one row say about its written sum."""

    field_id: str  # the row-sum field, `<grid field>_baris_<r>`
    status: str  # "counted" | "struck" (unused, 0) | "none" (the grid holds no mark: no evidence)
    counts: tuple[float, ...] = ()  # P(count = k), k = 0..60; k = 60 also stands for more
    cells: tuple[int, ...] = ()  # most probable class per cell (CELL_CLASSES index), for people
    sum_struck: bool = False  # a strike line crosses the row's sum boxes (not where its marks surely hold a group of five)

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


def struck_sum_rows(gray: np.ndarray, page_homography: np.ndarray,
                    sum_boxes_mm: tuple[tuple[RectMM, ...], ...]) -> tuple[bool, ...]:
    """Per row, whether a strike line crosses its row-sum boxes (`sum_boxes_mm`: each row's boxes, page mm x y w h,
    top to bottom): a straight segment in the skeleton of the ink once the printed frame is taken out, inked along
    its whole length and running through two boxes or more (an X or a 1 stays in its own box)."""
    boxes = np.array([b for row in sum_boxes_mm for b in row], np.float64)
    box_rows = np.repeat(np.arange(len(sum_boxes_mm)), [len(row) for row in sum_boxes_mm])
    box_h = float(np.median(boxes[:, 3]))
    s = SUM_PX_PER_MM
    origin = boxes[:, :2].min(axis=0) - 1.0
    size = np.ceil(((boxes[:, :2] + boxes[:, 2:]).max(axis=0) + 1.0 - origin) * s).astype(int)
    window = rectify(gray, page_homography, tuple(origin), tuple(size), s)
    # Paper from the brightest pixels 3 mm around each (a tall column may lie half in a shadow): ink is what is darker.
    paper = cv2.dilate(window, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (round(3 * s) | 1,) * 2)).astype(np.float32)
    binary = ((paper - window) >= 0.5 * INK_SHARE * paper).astype(np.uint8)
    frame = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((1, round(0.6 * np.median(boxes[:, 2]) * s)), np.uint8)) | \
        cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((round(0.6 * box_h * s), 1), np.uint8))
    # Specks (paper grain, a blurred frame's fringe) are no strokes: pieces shorter than STRIKE_PIECE_MM go.
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary & ~frame, connectivity=8)
    pieces = (stats[:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]].max(axis=1) >= STRIKE_PIECE_MM * s)[labels] & (labels > 0)
    # A thick digit's outline holds no long straight run; the skeleton widened again to 3 px follows a hand's wobble.
    strokes = cv2.dilate(skeletonize(pieces).astype(np.uint8), np.ones((3, 3), np.uint8))
    segments = cv2.HoughLinesP(strokes, 1, np.pi / 180, round(0.5 * box_h * s),
                               minLineLength=STRIKE_MIN_LENGTH * box_h * s, maxLineGap=STRIKE_GAP_MM * s)
    crossed = np.zeros(len(sum_boxes_mm), bool)
    for u0, v0, u1, v1 in ([] if segments is None else segments.reshape(-1, 4).astype(np.float64)):
        if not STRIKE_ANGLES[0] <= np.degrees(np.arctan2(abs(v1 - v0), abs(u1 - u0))) <= STRIKE_ANGLES[1]:
            continue
        steps = np.linspace(0.0, 1.0, max(2, round(np.hypot(u1 - u0, v1 - v0) / (STRIKE_STEP_MM * s))))
        points = np.stack([u0 + steps * (u1 - u0), v0 + steps * (v1 - v0)], axis=1)  # window px, x y
        u, v = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
        if strokes[v, u][frame[v, u] == 0].mean() < STRIKE_INKED:  # where it crosses the frame, the frame says nothing
            continue
        mm = points / s + origin
        inside = ((mm[:, None] >= boxes[None, :, :2]) & (mm[:, None] <= boxes[None, :, :2] + boxes[None, :, 2:]))
        run_mm = inside.all(axis=2).sum(axis=0) * STRIKE_STEP_MM  # per box, how far the line runs inside it
        if (run_mm >= STRIKE_IN_BOX_MM).sum() < 2:
            continue
        row_run = np.zeros(len(sum_boxes_mm))
        np.maximum.at(row_run, box_rows, run_mm)
        rows = np.flatnonzero(row_run >= STRIKE_IN_BOX_MM)
        crossed[rows[1:]] = True
        crossed[rows[0]] |= row_run[rows[0]] >= STRIKE_TOP_IN_BOX_MM
    return tuple(bool(c) for c in crossed)


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

    def read_grid(self, gray: np.ndarray, page_homography: np.ndarray, grid: TallyGrid,
                  sum_boxes_mm: tuple[tuple[RectMM, ...], ...] | None = None) -> list[RowTally]:
        """Every row of `grid` on an aligned photo; `sum_boxes_mm`: each row's sum boxes where the page shows them
        (page mm x y w h, top to bottom), looked at for a strike line (None: not looked at)."""
        probs = self.cell_probs(grid_windows(gray, page_homography, grid)).reshape(grid.rows, grid.cols, -1)
        return rows_of(grid, probs, struck_sum_rows(gray, page_homography, sum_boxes_mm) if sum_boxes_mm else None)


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


def rows_of(grid: TallyGrid, probs: np.ndarray, lined: tuple[bool, ...] | None = None) -> list[RowTally]:
    """Rows from the cells' (rows, cols, 7) probabilities and whether a strike line crosses each row's sum boxes
    (None: not looked at; see the module docstring)."""
    lined = lined or (False,) * grid.rows
    top = probs.argmax(axis=2)
    counts = [row_counts(probs[r]) for r in range(grid.rows)]
    if all(dist[0] > 0.5 for dist in counts):  # no mark anywhere: an empty or struck-out grid says nothing
        return [RowTally(f, "none", cells=tuple(int(c) for c in top[r])) for r, f in enumerate(grid.row_field_ids)]
    out = []
    for r, field_id in enumerate(grid.row_field_ids):
        cells = tuple(int(c) for c in top[r])
        struck = all(c in (0, STRUCK_CLASS) for c in cells) and cells.count(STRUCK_CLASS) >= STRUCK_CELLS
        if (struck and counts[r][0] >= STRUCK_SURE) or (lined[r] and counts[r][0] >= LINED_SURE):
            out.append(RowTally(field_id, "struck", cells=cells, sum_struck=lined[r]))
        else:
            used = counts[r][5:].sum() >= USED_SURE  # a group of five: a strike line draws none, so the line is a misread
            out.append(RowTally(field_id, "counted", tuple(float(p) for p in counts[r]), cells, lined[r] and not used))
    return out


@lru_cache(maxsize=2)
def counter(threads: int = 1) -> TallyCounter:
    """The shipped tally counter, loaded once per process."""
    return TallyCounter(threads)

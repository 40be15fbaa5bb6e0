"""Tally marks (turus) as KPPS officers draw them, with the labels a counter is judged by.

An officer keeps one style for a whole submission: groups of five as four uprights and a diagonal
(either direction), four uprights and a horizontal fifth, or a square drawn side by side and
closed by its diagonal; strokes slant, wobble, vary in length and now and then cross the cell's
border; a mistaken group is crossed out (an X or a scribble: it does not count) and the marks go
on in the next cell. Many officers strike out the unused space, as on the real 2024 photos: a line from the
last mark to the end of its row, a Z (or one diagonal) over the unused rows, and a line through
those rows' sum boxes. Row counts above 60 (a row holds 12 groups of five) are drawn as a full
row: the officer wrote the excess elsewhere.

Geometry: page px at `scale` px/mm on the ink mask; a cell's strokes are placed in its own
fractions (0..1 of its width and height).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.templates.model import TallyGrid

STRUCK = -1  # label of a row that is struck out as unused (and of a cell only a strike line crosses)


@dataclass(frozen=True)
class TallyStyle:
    fifth: str  # "diagonal" | "falling" (diagonal from the top left) | "horizontal" | "square"
    slant: float  # uprights' lean, as dx over their height
    length: float  # an upright's length as a share of the cell height
    pitch: float  # distance between uprights, share of the cell width
    thickness_mm: float
    wobble: float  # random placement of each stroke, share of the cell
    overshoot: float  # chance a stroke runs past the cell's top or bottom border
    strike: str  # "none" | "z" | "diagonal": what the officer draws over unused space
    reach: float  # how far the fifth stroke runs past the outer uprights, share of the cell width
    corrects: float = 0.0  # chance a grid holds one group crossed out (it does not count; the marks go on after it)
    practice: bool = False  # a training sheet: every cell a random number of marks, strikes anywhere (labels exact)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "TallyStyle":
        return cls(fifth=str(rng.choice(["diagonal", "falling", "horizontal", "square"], p=[0.55, 0.2, 0.15, 0.1])),
                   slant=float(rng.normal(0, 0.15)), length=float(rng.uniform(0.45, 0.85)),
                   pitch=float(rng.uniform(0.1, 0.2)), thickness_mm=float(rng.uniform(0.25, 0.8)),
                   wobble=float(rng.uniform(0.005, 0.04)), overshoot=float(rng.uniform(0.0, 0.2)),
                   strike=str(rng.choice(["none", "z", "diagonal"], p=[0.4, 0.35, 0.25])),
                   reach=float(rng.uniform(0.0, 0.15)), corrects=float(rng.choice([0.0, 0.3], p=[0.7, 0.3])))


@dataclass(frozen=True)
class TallyLabels:
    """What was drawn in one grid: marks per cell (rows x cols, 0..5), whether a strike line crosses each cell,
    and per row its count or STRUCK."""

    cells: list[list[int]]
    struck_cells: list[list[bool]]
    rows: list[int]

    def to_json(self) -> dict:
        return {"cells": self.cells, "struck_cells": self.struck_cells, "rows": self.rows}


def struck_rows(row_counts: list[int], style: TallyStyle) -> list[bool]:
    """Rows the officer strikes out: the unused ones after the last mark, when the style strikes and a mark exists."""
    if style.strike == "none" or not any(row_counts):
        return [False] * len(row_counts)
    last = max(r for r, c in enumerate(row_counts) if c)
    return [r > last for r in range(len(row_counts))]


def _line(mask: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], thickness: int) -> None:
    cv2.line(mask, (round(p0[0] * 16), round(p0[1] * 16)), (round(p1[0] * 16), round(p1[1] * 16)), 255, thickness,
             cv2.LINE_AA, shift=4)


class _Grid:
    """A grid's cells in page px, and the record of which cells strike lines cross."""

    def __init__(self, grid: TallyGrid, scale: float):
        x, y, w, h = grid.rect_mm
        self.x, self.y, self.scale = x * scale, y * scale, scale
        self.cw, self.ch = w / grid.cols * scale, h / grid.rows * scale
        self.rows, self.cols = grid.rows, grid.cols
        self.struck = [[False] * grid.cols for _ in range(grid.rows)]

    def point(self, r: float, c: float, fx: float, fy: float) -> tuple[float, float]:
        """Page px of fraction (fx, fy) of cell (r, c); fractions outside 0..1 reach into neighbours."""
        return self.x + (c + fx) * self.cw, self.y + (r + fy) * self.ch

    def strike(self, mask: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], thickness: int) -> None:
        """Draw a strike line and mark the cells whose inner part (10 % in from each border) it crosses."""
        _line(mask, p0, p1, thickness)
        for t in np.linspace(0.0, 1.0, 200):
            fx = (p0[0] + t * (p1[0] - p0[0]) - self.x) / self.cw
            fy = (p0[1] + t * (p1[1] - p0[1]) - self.y) / self.ch
            c, r = int(np.floor(fx)), int(np.floor(fy))
            if 0 <= r < self.rows and 0 <= c < self.cols and 0.1 < fx - c < 0.9 and 0.1 < fy - r < 0.9:
                self.struck[r][c] = True


def _group(mask: np.ndarray, g: _Grid, r: int, c: int, marks: int, style: TallyStyle, thickness: int,
           rng: np.random.Generator) -> float:
    """Draw `marks` (1..5) strokes of one group in cell (r, c); returns the right end of the marks (cell fraction)."""
    def jitter() -> float:
        return float(rng.normal(0, style.wobble))

    def over() -> float:  # a stroke's end past the cell's border, now and then
        return rng.uniform(-0.25, 0) if rng.random() < style.overshoot else 0.0

    top = (1 - style.length) / 2
    if style.fifth == "square":
        left, right, low, high = 0.2 + jitter(), 0.72 + jitter(), top + over() + jitter(), 1 - top - over() + jitter()
        sides = [((left, high), (left, low)), ((left, low), (right, low)), ((right, low), (right, high)),
                 ((right, high), (left, high)), ((left, high), (right, low))]
        for (ax, ay), (bx, by) in sides[:marks]:
            _line(mask, g.point(r, c, ax + jitter(), ay + jitter()), g.point(r, c, bx + jitter(), by + jitter()),
                  thickness)
        return (right if marks >= 2 else left) + 0.05
    start = 0.18 + rng.uniform(0, 0.06)
    xs = []
    for m in range(min(marks, 4)):
        mx = start + style.pitch * m + jitter()
        y0, y1 = top + over() + jitter(), 1 - top - over() + jitter()
        lean = style.slant * (y1 - y0) * g.ch / g.cw
        _line(mask, g.point(r, c, mx + lean / 2, y0), g.point(r, c, mx - lean / 2, y1), thickness)
        xs.append(mx)
    if marks == 5:
        a, b = xs[0] - 0.06 - style.reach + jitter(), xs[-1] + 0.06 + style.reach + jitter()
        if style.fifth == "horizontal":
            y = 0.5 + rng.uniform(-0.12, 0.12)
            _line(mask, g.point(r, c, a, y + jitter()), g.point(r, c, b, y + jitter()), thickness)
        else:
            low, high = 1 - top - 0.05 + jitter(), top + 0.05 + jitter()
            y0, y1 = (low, high) if style.fifth == "diagonal" else (high, low)
            _line(mask, g.point(r, c, a, y0), g.point(r, c, b, y1), thickness)
        return b
    return xs[-1] + 0.04


def _cross_out(mask: np.ndarray, g: _Grid, r: int, c: int, marks: int, style: TallyStyle, thickness: int,
               rng: np.random.Generator) -> None:
    """A group drawn, then crossed out as a mistake: an X or a scribble over it. The cell counts as STRUCK."""
    _group(mask, g, r, c, marks, style, thickness, rng)
    g.struck[r][c] = True
    if rng.random() < 0.5:
        _line(mask, g.point(r, c, 0.1, 0.15), g.point(r, c, 0.9, 0.85), thickness)
        _line(mask, g.point(r, c, 0.1, 0.85), g.point(r, c, 0.9, 0.15), thickness)
        return
    xs = np.linspace(0.1, 0.9, int(rng.integers(4, 8)))
    ys = np.where(np.arange(len(xs)) % 2, 0.2, 0.8) + rng.normal(0, 0.05, len(xs))
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        _line(mask, g.point(r, c, x0, y0), g.point(r, c, x1, y1), thickness)


def draw_tally(mask: np.ndarray, grid: TallyGrid, row_counts: list[int], scale: float, style: TallyStyle,
               rng: np.random.Generator) -> TallyLabels:
    """Draw the marks of `row_counts` (rows filled in order) into `grid` on the ink mask, and the strike-outs."""
    g = _Grid(grid, scale)
    thickness = max(1, round(style.thickness_mm * scale))
    if style.practice:
        return _practice(mask, g, style, thickness, rng)
    cells = [[0] * grid.cols for _ in range(grid.rows)]
    end = None  # (row, cell, fraction) just after the last mark
    # A mistake crossed out takes a cell of a row with room for one more group.
    roomy = [r for r, count in enumerate(row_counts) if 0 < count <= (grid.cols - 1) * 5]
    mistake = int(rng.choice(roomy)) if roomy and rng.random() < style.corrects else None
    for r, count in enumerate(row_counts):
        crossed = int(rng.integers(0, -(-count // 5))) if r == mistake else None
        groups = [min(5, count - k * 5) for k in range(-(-count // 5))]
        for c in range(min(grid.cols, len(groups) + (crossed is not None))):
            if c == crossed:
                _cross_out(mask, g, r, c, int(rng.integers(1, 6)), style, thickness, rng)
                continue
            cells[r][c] = groups[c - (crossed is not None and c > crossed)]
            end = (r, c, _group(mask, g, r, c, cells[r][c], style, thickness, rng))
    struck = struck_rows(row_counts, style)
    if end is not None and style.strike != "none":
        r, c, fx = end
        y = 0.5 + rng.uniform(-0.15, 0.15)
        if not (c == grid.cols - 1 and cells[r][c] == 5):  # room left in the last row: struck to its end
            g.strike(mask, g.point(r, c, fx + 0.05, y),
                     g.point(r, grid.cols - 1, rng.uniform(0.85, 1.05), y + rng.normal(0, 0.05)), thickness)
        unused = [i for i, s in enumerate(struck) if s]
        if unused:
            first, last = unused[0], unused[-1]
            low = g.point(last, 0, rng.uniform(0.0, 0.2), rng.uniform(0.7, 0.95))
            high = g.point(first, grid.cols - 1, rng.uniform(0.8, 1.0), rng.uniform(0.05, 0.3))
            g.strike(mask, low, high, thickness)
            if style.strike == "z":
                g.strike(mask, g.point(last, 0, 0.1, 0.8), g.point(last, grid.cols - 1, 0.95, 0.75), thickness)
    labels = [STRUCK if s else count for s, count in zip(struck, row_counts)]
    return TallyLabels(cells, g.struck, labels)


def _practice(mask: np.ndarray, g: _Grid, style: TallyStyle, thickness: int, rng: np.random.Generator) -> TallyLabels:
    """A training sheet: each row random marks per cell (a partial group is rare on forms), some rows then struck
    from a random cell to their end, some left empty under a diagonal strike."""
    cells = [[0] * g.cols for _ in range(g.rows)]
    for r in range(g.rows):
        kind = rng.random()
        if kind < 0.2:  # an unused row under a strike line
            y0, y1 = rng.uniform(0.2, 0.8, 2)
            g.strike(mask, g.point(r, 0, rng.uniform(0, 0.3), y0), g.point(r, g.cols - 1, rng.uniform(0.7, 1.0), y1),
                     thickness)
            continue
        if kind < 0.3:
            continue  # left empty
        end = None
        for c in range(g.cols):
            if rng.random() < 0.05:
                _cross_out(mask, g, r, c, int(rng.integers(1, 6)), style, thickness, rng)
                continue
            cells[r][c] = int(rng.choice(6, p=[0.15, 0.15, 0.15, 0.15, 0.15, 0.25]))
            if cells[r][c]:
                end = (c, _group(mask, g, r, c, cells[r][c], style, thickness, rng))
        if end is not None and rng.random() < 0.3:  # struck on from the last mark, as after a row's last group
            c, fx = end
            y = 0.5 + rng.uniform(-0.15, 0.15)
            g.strike(mask, g.point(r, c, fx + 0.05, y), g.point(r, g.cols - 1, rng.uniform(0.85, 1.05), y), thickness)
    return TallyLabels(cells, g.struck, [sum(row) for row in cells])


def strike_boxes(mask: np.ndarray, boxes_px: list[tuple[int, int, int, int]], thickness: int,
                 rng: np.random.Generator) -> None:
    """One line through the sum boxes of struck rows (x, y, w, h px each, top to bottom): bottom left to top right."""
    xs = [b[0] for b in boxes_px] + [b[0] + b[2] for b in boxes_px]
    ys = [b[1] for b in boxes_px] + [b[1] + b[3] for b in boxes_px]
    p0 = (min(xs) + rng.uniform(0, 0.2) * (max(xs) - min(xs)), max(ys) - rng.uniform(0.05, 0.2) * (max(ys) - min(ys)))
    p1 = (max(xs) - rng.uniform(0, 0.2) * (max(xs) - min(xs)), min(ys) + rng.uniform(0.02, 0.15) * (max(ys) - min(ys)))
    _line(mask, p0, p1, thickness)

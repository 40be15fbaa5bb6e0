"""Printed digit boxes on a rectified page: closed rectangles of the print's lines, each edge measured to sub-mm.

Only long straight strokes are kept (a morphological opening along each axis): the frames of boxes and tables
stay, while printed text, the dotted writing guide and handwriting inside a box go. A box is then a hole of that
line map that is a filled rectangle of a digit box's size. Each of its four edges is measured on the page's
darkness profile across the printed line (median along the edge, so handwriting touching it does not pull it):
the profile's centroid is the line's centre, which is what a template's box rectangle is.

Input: the page rectified at `px_per_mm`, window px (u, v) = page mm (u, v) / px_per_mm, pixel centres at
integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader import line_check
from ocr.templates.model import RectMM

BOX_SIDE_MM = (6.0, 40.0)  # digit boxes on KPU forms are 12-20 mm; tally cells and table cells fall outside or fail
LINE_MM = 4.0  # strokes at least this long and straight count as printed lines
EDGE_REACH_MM = 2.0  # how far outside a box's hole its frame line is looked for


@dataclass(frozen=True)
class FoundBox:
    rect_mm: RectMM  # centre line of the printed frame, page mm (x, y, w, h)
    stroke_mm: float  # width of the frame line, mean of the four edges


def straight_strokes(page: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical): (H, W) uint8 maps, 255 where the page has a straight printed stroke along that axis at
    least LINE_MM long."""
    k = round(LINE_MM * px_per_mm)
    return line_check.straight_strokes(page, int(6 * px_per_mm) | 1, (k, k))


def line_map(page: np.ndarray, px_per_mm: float) -> np.ndarray:
    """(H, W) uint8, 255 where the page has a straight printed line (horizontal or vertical) at least LINE_MM long."""
    horizontal, vertical = straight_strokes(page, px_per_mm)
    return horizontal | vertical


def _line_centre(darkness: np.ndarray) -> tuple[float, float] | None:
    """(centre, width) in profile px of the darkest line in a darkness profile; None when it holds no line."""
    base, peak = float(darkness.min()), float(darkness.max())
    if peak - base < 40:
        return None
    floor = base + 0.2 * (peak - base)
    top = int(np.argmax(darkness))
    a, b = top, top + 1
    while a > 0 and darkness[a - 1] > floor:
        a -= 1
    while b < len(darkness) and darkness[b] > floor:
        b += 1
    weights = darkness[a:b] - floor
    centre = a + float((np.arange(b - a) * weights).sum() / weights.sum())
    return centre, float(np.count_nonzero(darkness[a:b] > base + 0.5 * (peak - base)))


def _measure(page: np.ndarray, hole: tuple[int, int, int, int], px_per_mm: float) -> FoundBox | None:
    """The box around a hole (x, y, w, h px, the inside of its frame), its edges on the darkness profiles."""
    x, y, w, h = hole
    reach, inside = round(EDGE_REACH_MM * px_per_mm), round(0.5 * px_per_mm)
    rows = slice(y + h // 5, y + h - h // 5)
    cols = slice(x + w // 5, x + w - w // 5)
    spans = {"left": (x - reach, x + inside), "right": (x + w - inside, x + w + reach),
             "top": (y - reach, y + inside), "bottom": (y + h - inside, y + h + reach)}
    edges, widths = {}, []
    for side, (start, stop) in spans.items():
        start, stop = max(start, 0), min(stop, page.shape[1 if side in ("left", "right") else 0])
        strip = page[rows, start:stop] if side in ("left", "right") else page[start:stop, cols].T
        found = _line_centre(255.0 - np.median(strip, axis=0))
        if found is None:
            return None
        edges[side] = start + found[0]
        widths.append(found[1])
    left, top = edges["left"] / px_per_mm, edges["top"] / px_per_mm
    rect = (left, top, edges["right"] / px_per_mm - left, edges["bottom"] / px_per_mm - top)
    return FoundBox(rect_mm=rect, stroke_mm=float(np.mean(widths)) / px_per_mm)


def find_boxes(page: np.ndarray, px_per_mm: float) -> list[FoundBox]:
    """Every closed rectangle of a digit box's size on the rectified page, measured in page mm."""
    lines = line_map(page, px_per_mm)
    contours, hierarchy = cv2.findContours(lines, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    low, high = (s * px_per_mm for s in BOX_SIDE_MM)
    found = []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0]):
        if parent < 0:  # an outer outline of ink, not a hole in it
            continue
        x, y, w, h = cv2.boundingRect(contour)
        if not (low <= w <= high and low <= h <= high and 0.4 <= w / h <= 2.5):
            continue
        # The traced outline runs on the hole's border pixels: its area is about (w - 1) (h - 1) for a rectangle.
        if cv2.contourArea(contour) < 0.85 * (w - 1) * (h - 1):
            continue
        box = _measure(page, (x, y, w, h), px_per_mm)
        if box is not None:
            found.append(box)
    return found

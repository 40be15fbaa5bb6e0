"""Read the OMR bubbles under a field's boxes: a second, independent reading of each digit.

Each column of ten bubbles (digits 0..9) sits under one box. A bubble's fill is how dark its
inner disc is against the paper just around it (fold shadows darken whole rows), scaled so that
solid ink is 1: the thin printed digit inside an empty bubble gives about 0.2, a pen-filled bubble
close to 1. The scale is absolute, not relative to the column's darkest pixel, since a column
with no filled bubble has no dark pixel.
One filled bubble is a reading, none is "no reading" (never a 9, as SIREKAP read it), two or
more are a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ocr.reader.align import PageAlignment
from ocr.reader.decode import Photo
from ocr.reader.digits import BLANK, DASH, X_FILLER
from ocr.reader.geometry import rectify

PX_PER_MM = 6.0  # sampling of the rectified bubble patches
FILLED = 0.5  # fill above which a bubble counts as filled
SOLID = 0.7  # darkness (1 - pixel / paper) of solid pen ink in a photo
INNER = 0.7  # inner disc radius as a share of the bubble's radius (keeps the printed outline out)
PAPER_RING = (1.12, 1.3)  # the ring of paper around a bubble, in bubble radii


@dataclass(frozen=True)
class BubbleColumn:
    """The bubbles under one box: `digit` is the filled one when exactly one is filled."""

    field_id: str
    index: int  # box index, left to right
    fill: tuple[float, ...]  # share of ink in each bubble's inner disc, digits 0..9
    status: Literal["read", "none", "conflict"]
    digit: int | None
    confidence: float  # 0..1: how clearly the decision stands off the threshold


def _column_patch(photo: Photo, alignment: PageAlignment, centres_mm: np.ndarray, diameter_mm: float,
                  shift_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The column rectified at PX_PER_MM (gray uint8) and the bubble centres in its px (x, y)."""
    centres = centres_mm + np.array(shift_mm)
    lo = centres.min(axis=0) - diameter_mm
    hi = centres.max(axis=0) + diameter_mm
    size = np.ceil((hi - lo) * PX_PER_MM).astype(int)
    patch = rectify(photo.gray, alignment.page_homography, (lo[0], lo[1]), (int(size[0]), int(size[1])), PX_PER_MM)
    return patch, (centres - lo) * PX_PER_MM


def read_column(patch: np.ndarray, centres_px: np.ndarray, diameter_mm: float) -> np.ndarray:
    """Fill (0..1) of each bubble in a rectified column patch."""
    gray = patch.astype(np.float32)
    r = diameter_mm / 2 * PX_PER_MM
    yy, xx = np.mgrid[: patch.shape[0], : patch.shape[1]]
    fills = []
    for cx, cy in centres_px:
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        ring = (d2 >= (PAPER_RING[0] * r) ** 2) & (d2 <= (PAPER_RING[1] * r) ** 2)
        paper = max(float(np.percentile(gray[ring], 80)), 1.0)
        darkness = np.clip((paper - gray[d2 <= (INNER * r) ** 2]) / (paper * SOLID), 0.0, 1.0)
        fills.append(float(darkness.mean()))
    return np.array(fills)


def decide(field_id: str, index: int, fill: np.ndarray) -> BubbleColumn:
    filled = np.flatnonzero(fill > FILLED)
    order = np.sort(fill)[::-1]
    if len(filled) == 1:
        margin = min(order[0] - FILLED, FILLED - order[1])
        return BubbleColumn(field_id, index, tuple(np.round(fill, 3)), "read", int(filled[0]),
                            float(np.clip(margin / FILLED, 0, 1)))
    if len(filled) == 0:
        return BubbleColumn(field_id, index, tuple(np.round(fill, 3)), "none", None,
                            float(np.clip((FILLED - order[0]) / FILLED, 0, 1)))
    return BubbleColumn(field_id, index, tuple(np.round(fill, 3)), "conflict", None,
                        float(np.clip((order[1] - FILLED) / FILLED, 0, 1)))


def read_bubbles(photo: Photo, alignment: PageAlignment, field_id: str) -> list[BubbleColumn]:
    """One reading per box of the field; empty when the field has no bubbles."""
    field = alignment.template.fields[field_id]
    if field.bubbles is None:
        return []
    shifts = {f.index: f.shift_mm for f in alignment.boxes if f.field_id == field_id}
    out = []
    for index, column in enumerate(field.bubbles.columns):
        centres = np.array([c.centre_mm for c in column], np.float64)
        diameter = column[0].diameter_mm
        patch, centres_px = _column_patch(photo, alignment, centres, diameter, shifts.get(index, (0.0, 0.0)))
        out.append(decide(field_id, index, read_column(patch, centres_px, diameter)))
    return out


BUBBLE_ERROR = 0.02  # chance that a bubble read disagrees with what the officer meant (misfill, misread)


def bubble_likelihood(column: BubbleColumn) -> np.ndarray:
    """(13,) likelihood of each box class given the column's bubbles, to multiply into the box's probabilities.

    A filled bubble d supports the digit d; a filled 0 also fits an X, dash or blank box (some officers
    fill 0 under them). No filled bubble fits a filler box, not a digit. A conflict says nothing.
    Weak fills count less: the likelihood is mixed with "no information" by the read's confidence.
    """
    hard = np.full(13, BUBBLE_ERROR)
    if column.status == "read":
        hard[column.digit] = 1.0
        if column.digit == 0:
            hard[[X_FILLER, DASH, BLANK]] = 1.0
    elif column.status == "none":
        hard[[X_FILLER, DASH, BLANK]] = 1.0
    else:
        hard[:] = 1.0
    return column.confidence * hard + (1.0 - column.confidence)

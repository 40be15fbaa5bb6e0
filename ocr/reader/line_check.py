"""Whether a page homography puts a reference scan's printed lines on the photo's own: the check that lets a feature
match with few common points stand. Two TPS's scans of one older form share little but the print (other handwriting,
other candidate names, a watermark, 2-3 px/mm): 10-40 feature matches agree where 60 are asked of a match alone.

The photo is rectified onto the reference page at COMPARE_PX_PER_MM; the long horizontal and vertical dark lines of
both are compared: the share of the reference's line pixels within LINE_TOLERANCE_MM of the photo's, the share of the
photo's near the reference's, and their harmonic mean. On the real 2014, 2015 and 2019 scans a right placement agrees
0.61-0.96, a placement on another form's reference at most 0.40.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.geometry import rectify

COMPARE_PX_PER_MM = 2.0
LINE_TOLERANCE_MM = 1.0
LINE_SHARE = 1 / 25  # a dark run at least this share of the image's width (or height) long is a printed line
SAMPLE = 20_000  # line pixels compared, at most


def straight_strokes(gray: np.ndarray, block_px: int, length_px: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical): uint8 maps, 255 where `gray` has a dark stroke (against the mean of a `block_px`
    window) running straight along that axis at least `length_px` (along x, along y) long: printed lines stay, text,
    dotted guides and handwriting go (also what template learn finds boxes and bends by)."""
    dark = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block_px, 15)
    return (cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((1, length_px[0]), np.uint8)),
            cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((length_px[1], 1), np.uint8)))


def line_map(gray: np.ndarray) -> np.ndarray:
    """The long horizontal and vertical dark lines of `gray` (uint8, 255 on a line)."""
    height, width = gray.shape
    across, down = straight_strokes(gray, 25, (max(8, int(width * LINE_SHARE)), max(8, int(height * LINE_SHARE))))
    return across | down


def _points_mm(lines: np.ndarray, px_per_mm: float) -> np.ndarray:
    """(n, 2) page mm (x, y) of at most SAMPLE line pixels, spread evenly through the map."""
    points = np.argwhere(lines)[:, ::-1] / px_per_mm
    return points[np.linspace(0, len(points) - 1, SAMPLE).astype(int)] if len(points) > SAMPLE else points


def _near(lines: np.ndarray, px_per_mm: float) -> np.ndarray:
    """A mask at COMPARE_PX_PER_MM of what lies within LINE_TOLERANCE_MM of a line of `lines` (px at `px_per_mm`)."""
    f = COMPARE_PX_PER_MM / px_per_mm
    small = cv2.resize(lines.astype(np.float32), None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f != 1 else lines
    radius = max(1, round(LINE_TOLERANCE_MM * COMPARE_PX_PER_MM))
    return cv2.dilate((small > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))


def _share_on(points_mm: np.ndarray, near: np.ndarray) -> float:
    if not len(points_mm):
        return 0.0
    ij = np.floor(points_mm * COMPARE_PX_PER_MM).astype(np.int64)
    inside = (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < near.shape[1]) & (ij[:, 1] < near.shape[0])
    return float(near[ij[inside, 1], ij[inside, 0]].sum() / len(points_mm))


@dataclass(frozen=True)
class ReferenceLines:
    points_mm: np.ndarray  # (n, 2) page mm (x, y) of the reference scan's line pixels, a sample
    near: np.ndarray  # at COMPARE_PX_PER_MM: within LINE_TOLERANCE_MM of one of its lines
    size: tuple[int, int]  # the page at COMPARE_PX_PER_MM (w, h)


def reference_lines(scan: np.ndarray, px_per_mm: float) -> ReferenceLines:
    """What a reference scan (px at `px_per_mm`) is compared by; computed once per scan by the caller."""
    lines = line_map(scan)
    size = (round(scan.shape[1] / px_per_mm * COMPARE_PX_PER_MM), round(scan.shape[0] / px_per_mm * COMPARE_PX_PER_MM))
    return ReferenceLines(_points_mm(lines, px_per_mm), _near(lines, px_per_mm), size)


def line_agreement(gray: np.ndarray, page_homography: np.ndarray, reference: ReferenceLines) -> float:
    """0..1: how well the reference page's printed lines, put into the photo by `page_homography` (page mm -> photo
    px), lie on the photo's own lines, and the photo's on the reference's."""
    page = rectify(gray, page_homography, (0.0, 0.0), reference.size, COMPARE_PX_PER_MM, border=cv2.BORDER_CONSTANT,
                   border_value=255)
    lines = line_map(page)
    found = _share_on(reference.points_mm, _near(lines, COMPARE_PX_PER_MM))
    kept = _share_on(_points_mm(lines, COMPARE_PX_PER_MM), reference.near)
    return 2 * found * kept / (found + kept) if found + kept else 0.0

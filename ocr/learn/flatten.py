"""A bent sheet made flat: the page's long printed lines, straight and axis-aligned on paper, measured on the page
rectified by its corner markers, say how far the bend moves each point; the page is remapped to undo it.

The markers' homography puts the four marker centres right, but a sheet curving over an axis (a phone photo's bend,
ocr/synth/camera.py) moves the points between them by up to a few mm. What is left after the homography moves a flat
point (x, y) to (x + dx(y), y + dy(x)) on the rectified page, zero at the markers. A horizontal line at flat y0 is
seen at y0 + dy(x): its shape along x, whatever its y0, is dy up to a constant; the vertical lines give dx(y) the same
way: one polynomial shape (its curvature held small, so it bridges gaps between tables nearly straight) plus an
offset per line. The lines give a profile's shape over their span, not its offset: that is where the shape, carried
on straight (its slope over the span's ends), meets the markers, where the bend is zero (the nearer marker weighs
more); so a table far from the markers along an axis (a page whose print is a band) gets that axis's offset less
surely. A stretch along a line (the sheet's foreshortening) does not show in straightness and is left to the
markers. Only lines inside the markers' rectangle are used (the synthetic photos' paper edge is not bent with the
print), and neither the markers' own squares nor the page tag's modules.

Coordinates: page mm (x, y) from the rectified page's top-left; the page array is the page rectified at
`px_per_mm`, window px (u, v) = page mm (x, y) * px_per_mm, pixel centres at integer px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.polynomial import chebyshev

from ocr.learn.boxes import straight_strokes
from ocr.templates.model import Markers, RectMM

LONG_LINE_MM = 20.0  # printed lines at least this long are measured (table rules, rows of boxes)
SAMPLE_MM = 4.0  # a line's centre is measured once per this length along it
PROFILE_DEGREE = 6  # a bend profile over the measured span is a polynomial of this degree (a sheet's few waves)
JUMP_MM = 0.4  # a printed line's centre moves less than this from one sample to the next (a bend's slope is < 0.1)
OUTLIER_MM = 0.3  # samples farther than this (or 3 median residuals) off the fit are left out: crossings, merged strokes
TAG_PAD_MM = 3.0  # strokes this near the page tag are left out with it (its frame, its quiet zone)
END_SLOPE_SHARE = 0.15  # the span's share at each end whose secant slope carries the shape on to the markers
CURVATURE_POINTS = 40  # where along the span the shape's curvature is held small
CURVATURE_WEIGHT_MM2 = 300.0  # a curvature of 1e-3 / mm (a 4 mm wave over 400 mm) weighs as a sample 0.3 mm off
MIN_LINES = 3  # fewer long lines along an axis: that axis is left as the markers put it


@dataclass(frozen=True)
class PageBend:
    """The bend left on the rectified page, mm: flat point (x, y) is seen at (x + dx_of_y[v], y + dy_of_x[u])."""

    dx_of_y: np.ndarray  # (H,) per page row v
    dy_of_x: np.ndarray  # (W,) per page column u

    @property
    def largest_mm(self) -> float:
        return float(max(np.abs(self.dx_of_y).max(initial=0.0), np.abs(self.dy_of_x).max(initial=0.0)))


def _line_samples(strokes: np.ndarray, darkness: np.ndarray, px_per_mm: float,
                  between_mm: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """(along, across, line): the centre of every long horizontal stroke of `strokes` lying between `between_mm` in y
    once per SAMPLE_MM, page mm (x, y), and which stroke it is. A run of columns where the stroke is thicker than usual
    (another stroke merged into it) is no sample."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    step = round(SAMPLE_MM * px_per_mm)
    along, across, line = [], [], []
    for i in np.flatnonzero(stats[1:, cv2.CC_STAT_WIDTH] >= LONG_LINE_MM * px_per_mm) + 1:  # 0 is the background
        x, y, w, h, _ = stats[i]
        if not between_mm[0] * px_per_mm < y + h / 2 < between_mm[1] * px_per_mm:
            continue
        bins = w // step
        mask = labels[y:y + h, x:x + bins * step] == i
        weights = (darkness[y:y + h, x:x + bins * step] * mask).reshape(h, bins, step).sum(axis=2)  # (h, bins)
        per_column = mask.sum(axis=0)
        thickness = np.median(per_column[per_column > 0])
        pixels = per_column.reshape(bins, step).sum(axis=1)
        good = (pixels >= 0.6 * step * thickness) & (pixels <= 1.5 * step * thickness) & (weights.sum(axis=0) > 0)
        centre = (weights * np.arange(h)[:, None]).sum(axis=0)[good] / weights.sum(axis=0)[good]
        if np.abs(np.diff(centre)).max(initial=0.0) > JUMP_MM * px_per_mm:  # strokes side by side (a tag's modules)
            continue
        along.append((x + np.flatnonzero(good) * step + (step - 1) / 2) / px_per_mm)
        across.append((y + centre) / px_per_mm)
        line.append(np.full(int(good.sum()), i))
    if not along:
        return np.empty(0), np.empty(0), np.empty(0, int)
    return np.concatenate(along), np.concatenate(across), np.concatenate(line)


def _profile(along: np.ndarray, across: np.ndarray, line: np.ndarray, markers_mm: tuple[float, float],
             length_px: int, px_per_mm: float) -> np.ndarray:
    """(length_px,) mm: the lines' common shape across, at each px along the page, zero at the markers' two
    coordinates along (`markers_mm`). Each line has its own offset; the shape is one polynomial over their span."""
    names, which = np.unique(line, return_inverse=True)
    if len(names) < MIN_LINES:
        return np.zeros(length_px)
    low, high = float(along.min()), float(along.max())
    scaled = (along - low) / (high - low) * 2 - 1
    design = np.hstack([np.eye(len(names))[which], chebyshev.chebvander(scaled, PROFILE_DEGREE)[:, 1:]])
    # Paper bends smoothly: the shape's curvature (1/mm) is kept small, so that across a gap between the lines (where
    # they say nothing) it goes on nearly straight instead of as the polynomial pleases.
    grid = np.linspace(-1.0, 1.0, CURVATURE_POINTS)
    bend_rate = np.stack([chebyshev.chebval(grid, chebyshev.chebder(np.eye(PROFILE_DEGREE + 1)[k], 2))
                          for k in range(1, PROFILE_DEGREE + 1)], axis=1) * (2 / (high - low)) ** 2
    smooth = np.hstack([np.zeros((CURVATURE_POINTS, len(names))), CURVATURE_WEIGHT_MM2 * bend_rate])
    keep = np.ones(len(along), bool)
    for _ in range(3):  # refit without the samples far off the fit
        coef = np.linalg.lstsq(np.vstack([design[keep], smooth]),
                               np.concatenate([across[keep], np.zeros(CURVATURE_POINTS)]), rcond=None)[0]
        residual = np.abs(design @ coef - across)
        keep = residual <= max(OUTLIER_MM, 3 * float(np.median(residual)))
    shape = np.concatenate([[0.0], coef[len(names):]])
    at = np.arange(length_px) / px_per_mm
    inside = chebyshev.chebval((np.clip(at, low, high) - low) / (high - low) * 2 - 1, shape)
    # The offset: the shape's ends carried on straight to the markers, where the bend is zero, the nearer weighing more.
    # Each end's slope is a secant over the span's last END_SLOPE_SHARE (a polynomial's own end slope is noisy).
    first, last = markers_mm
    inward = min(END_SLOPE_SHARE * 2, 1.0)
    ends = chebyshev.chebval([-1.0, 1.0], shape)
    secants = (ends - chebyshev.chebval([-1.0 + inward, 1.0 - inward], shape)) / (inward / 2 * (high - low))
    reach = np.array([max(low - first, 1.0), max(last - high, 1.0)])
    carried = ends + reach * secants
    offset = float((carried / reach).sum() / (1 / reach).sum())
    # Between the span's ends and the markers the bend fades linearly to zero.
    fade = np.interp(at, [first, max(low, first + 1), min(high, last - 1), last], [0.0, 1.0, 1.0, 0.0])
    return (inside - offset) * fade


def flatten(page: np.ndarray, px_per_mm: float, markers: Markers, tag_mm: RectMM | None) -> tuple[np.ndarray, PageBend]:
    """The rectified page (H, W uint8) with the bend its long lines show undone, and that bend. The page tag's
    modules (`tag_mm`, page mm) make strokes that are no printed lines."""
    darkness = 255.0 - page.astype(np.float32)
    horizontal, vertical = straight_strokes(page, px_per_mm)
    if tag_mm is not None:
        x, y, w, h = (round(v * px_per_mm) for v in tag_mm)
        pad = round(TAG_PAD_MM * px_per_mm)
        horizontal[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad] = 0
        vertical[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad] = 0
    centres = np.array(markers.centres_mm())
    at_x = float(centres[:, 0].min()), float(centres[:, 0].max())  # the markers' centres, where the bend is zero
    at_y = float(centres[:, 1].min()), float(centres[:, 1].max())
    inset = 2 * markers.square_mm  # the markers' own squares are no printed lines
    inside_x, inside_y = (at_x[0] + inset, at_x[1] - inset), (at_y[0] + inset, at_y[1] - inset)
    height, width = page.shape
    # Only lines inside the markers' rectangle, where the form is printed: beyond it lie the paper's edge and the
    # background. The vertical lines are the horizontal lines of the transposed page: along y, across x.
    dy = _profile(*_line_samples(horizontal, darkness, px_per_mm, inside_y), at_x, width, px_per_mm)
    dx = _profile(*_line_samples(np.ascontiguousarray(vertical.T), np.ascontiguousarray(darkness.T), px_per_mm, inside_x),
                  at_y, height, px_per_mm)
    map_x = (np.arange(width)[None, :] + dx[:, None] * px_per_mm).astype(np.float32)
    map_y = (np.arange(height)[:, None] + dy[None, :] * px_per_mm).astype(np.float32)
    flat = cv2.remap(page, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    return flat, PageBend(dx_of_y=dx, dy_of_x=dy)

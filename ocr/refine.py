"""Refine: correct each box's position on the printed box frames, where the page is not flat.

The page homography (markers) is exact only for a flat page; a bent or folded sheet moves boxes
by millimetres. Each box frame is printed as four straight lines, so in a window rectified
through the homography the frame shows as peaks of the row and column darkness profiles. Pass 1
measures the shift of whole fields of big boxes over a wide search, a smooth displacement field
(quadratic in page x, y) is fitted to them robustly, and pass 2 measures every box, row sums
included, in a narrow search around that field. A box whose frame cannot be seen keeps the
field's prediction and says so through its low `frame_strength`.

Shifts are in page mm (x, y); windows are sampled at REFINE_PX_PER_MM.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.templates import RectMM, TemplatePage

REFINE_PX_PER_MM = 4.0
WIDE_SEARCH_MM = 7.0  # less than the 23 mm pitch minus a box: a neighbour's frame cannot be taken for ours
NARROW_SEARCH_MM = 2.5  # less than half the 12-16 mm pitch of stacked row-sum boxes
BIG_BOX_MM = 15.0
MIN_STRENGTH = 0.25  # share of full darkness a frame line must show to count as seen


@dataclass(frozen=True)
class BoxFit:
    field_id: str
    index: int
    shift_mm: tuple[float, float]  # (dx, dy) added to the template's box position
    frame_strength: float  # 0..1: how clearly the printed frame was seen at the chosen shift
    measured: bool  # False: the shift comes from the smooth field, not from this box's frame


class _Window:
    """A page region rectified at REFINE_PX_PER_MM as darkness 0..1 (paper 0, ink 1)."""

    def __init__(self, gray: np.ndarray, h: np.ndarray, rect_mm: RectMM, margin_mm: float):
        x, y, w, hh = rect_mm
        r = REFINE_PX_PER_MM
        self.x0, self.y0 = x - margin_mm, y - margin_mm
        to_photo = h @ np.array([[1 / r, 0, self.x0], [0, 1 / r, self.y0], [0, 0, 1]])
        size = (int(round((w + 2 * margin_mm) * r)) + 1, int(round((hh + 2 * margin_mm) * r)) + 1)
        patch = cv2.warpPerspective(gray, to_photo, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
        paper, ink = np.percentile(patch[::3, ::3], [90, 2])  # a subsample is plenty for two levels
        self.dark = np.clip((np.float32(paper) - patch.astype(np.float32)) / np.float32(max(paper - ink, 10.0)), 0, 1)

    def measure(self, boxes: list[RectMM], prior_mm: tuple[float, float], search_mm: float
                ) -> tuple[tuple[float, float], float]:
        """Shift (mm) of `boxes` searched within `search_mm` of `prior_mm`, and the frame strength (0..1)."""
        r = REFINE_PX_PER_MM
        px, py = prior_mm
        left = min(b[0] for b in boxes) + px - search_mm - 1 - self.x0
        top = min(b[1] for b in boxes) + py - search_mm - 1 - self.y0
        right = max(b[0] + b[2] for b in boxes) + px + search_mm + 1 - self.x0
        bottom = max(b[1] + b[3] for b in boxes) + py + search_mm + 1 - self.y0
        c0, r0 = max(0, int(left * r)), max(0, int(top * r))
        sub = self.dark[r0:int(bottom * r) + 1, c0:int(right * r) + 1]
        verticals = np.array([e for b in boxes for e in (b[0], b[0] + b[2])]) + px - self.x0
        horizontals = np.array(sorted({e for b in boxes for e in (b[1], b[1] + b[3])})) + py - self.y0
        search = int(round(search_mm * r))
        dx, strength_x = _best_shift(cv2.reduce(sub, 0, cv2.REDUCE_AVG).ravel(), verticals * r - c0, search)
        dy, strength_y = _best_shift(cv2.reduce(sub, 1, cv2.REDUCE_AVG).ravel(), horizontals * r - r0, search)
        return (px + dx / r, py + dy / r), min(strength_x, strength_y)


def _best_shift(profile: np.ndarray, lines_px: np.ndarray, search_px: int) -> tuple[float, float]:
    """Shift (px, sub-pixel) that puts the most darkness on the expected lines, and that darkness (0..1)."""
    padded = np.concatenate([np.zeros(search_px + 1, np.float32), profile, np.zeros(search_px + 2, np.float32)])
    starts = np.round(lines_px).astype(int) + 1  # index of shift -search_px for each line
    starts = np.clip(starts, 0, len(padded) - 2 * search_px - 1)
    scores = sum(padded[i:i + 2 * search_px + 1] for i in starts) / len(starts)
    k = int(np.argmax(scores))
    offset = 0.0
    if 0 < k < len(scores) - 1:
        a, b, c = scores[k - 1], scores[k], scores[k + 1]
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return float(k - search_px + offset + (np.round(lines_px) - lines_px).mean()), float(scores[k])


def _field_rect(boxes: tuple[RectMM, ...]) -> RectMM:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    return x0, y0, max(b[0] + b[2] for b in boxes) - x0, max(b[1] + b[3] for b in boxes) - y0


def _design(points: np.ndarray, terms: int) -> np.ndarray:
    x, y = points[:, 0] / 300.0, points[:, 1] / 450.0  # page-sized units keep the fit well conditioned
    cols = [np.ones_like(x), x, y, x * y, x * x, y * y][:terms]
    return np.stack(cols, axis=1)


class SmoothField:
    """A displacement field (mm) over the page fitted robustly to measured shifts."""

    def __init__(self, points: np.ndarray, shifts: np.ndarray, weights: np.ndarray):
        n = len(points)
        self.terms = 6 if n >= 8 else 3 if n >= 4 else 1 if n else 0
        self.coef = np.zeros((max(self.terms, 1), 2))
        if not self.terms:
            return
        keep = np.ones(n, bool)
        for _ in range(3):  # refit without the measurements the field cannot explain (a misread frame)
            a = _design(points[keep], self.terms) * weights[keep, None]
            self.coef = np.linalg.lstsq(a, shifts[keep] * weights[keep, None], rcond=None)[0]
            residual = np.linalg.norm(self(points) - shifts, axis=1)
            new_keep = residual < max(1.0, 2.5 * np.median(residual))
            if new_keep.sum() < self.terms or (new_keep == keep).all():
                break
            keep = new_keep

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if not self.terms:
            return np.zeros((len(points), 2))
        return _design(points, self.terms) @ self.coef


def refine_boxes(gray: np.ndarray, page_homography: np.ndarray, page: TemplatePage) -> list[BoxFit]:
    """Every box of the page with its shift from the template position (mm)."""
    windows: dict[str, _Window] = {}
    centres, shifts, weights = [], [], []
    for field in page.fields:
        if min(field.boxes_mm[0][2:]) < BIG_BOX_MM:
            continue
        window = windows[field.id] = _Window(gray, page_homography, _field_rect(field.boxes_mm), WIDE_SEARCH_MM + 1)
        shift, strength = window.measure(list(field.boxes_mm), (0.0, 0.0), WIDE_SEARCH_MM)
        if strength >= MIN_STRENGTH:
            x, y, w, h = _field_rect(field.boxes_mm)
            centres.append((x + w / 2, y + h / 2))
            shifts.append(shift)
            weights.append(strength)
    smooth = SmoothField(np.array(centres).reshape(-1, 2), np.array(shifts).reshape(-1, 2), np.array(weights))
    fits = []
    for field in page.fields:
        predicted = smooth(np.array([(x + w / 2, y + h / 2) for x, y, w, h in field.boxes_mm]))
        x, y, w, h = _field_rect(field.boxes_mm)
        # The wide window of pass 1 serves pass 2 too while the narrow search stays inside it.
        reach = float(np.abs(predicted).max()) + NARROW_SEARCH_MM + 1
        window = windows.get(field.id)
        if window is None or reach > WIDE_SEARCH_MM + 1:
            mean_shift = predicted.mean(axis=0)
            margin = float(np.abs(predicted - mean_shift).max()) + NARROW_SEARCH_MM + 1.5
            window = _Window(gray, page_homography, (x + mean_shift[0], y + mean_shift[1], w, h), margin)
        for i, box in enumerate(field.boxes_mm):
            prior = (float(predicted[i, 0]), float(predicted[i, 1]))
            shift, strength = window.measure([box], prior, NARROW_SEARCH_MM)
            seen = strength >= MIN_STRENGTH
            fits.append(BoxFit(field_id=field.id, index=i, shift_mm=shift if seen else prior, frame_strength=strength,
                               measured=seen))
    return fits


def box_corners_px(page_homography: np.ndarray, box_mm: RectMM, shift_mm: tuple[float, float]) -> np.ndarray:
    """(4, 2) photo px of a box's corners (TL, TR, BR, BL) after its shift."""
    x, y, w, h = box_mm
    x, y = x + shift_mm[0], y + shift_mm[1]
    corners = np.array([[(x, y), (x + w, y), (x + w, y + h), (x, y + h)]], np.float64)
    return cv2.perspectiveTransform(corners, page_homography)[0]

"""The blank page a photo is refined against: what the template prints, as darkness, window by window.

`ocr.reader.refine` correlates the photo, rectified onto the page, with the blank page: rendered
from the template at REFINE_PX_PER_MM, or a reference-image page's scan with its boxes wiped. The
blank page, the profiles of its window around each box and which box edges a scan lets be checked
are the same for every photo of a template page: each is made once per process and cached here.

Page px are (x, y) at REFINE_PX_PER_MM from the page's top-left (page mm x REFINE_PX_PER_MM).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.geometry import map_points
from ocr.reader.reference import reference_scan
from ocr.templates.model import FormTemplate, RectMM, rect_corners
from ocr.templates.render import MM_PER_INCH, render_page

REFINE_PX_PER_MM = 4.0
CONTEXT_MM = 4.0  # printed lines this far around a box take part: thick rules anchor thin row-sum frames

# By the page's content too: the template editor reads with a page it changed under the same id and version.
_blank_cache: dict[tuple[str, int, int, int], np.ndarray] = {}
_checkable_cache: dict[tuple[str, int, int, int], np.ndarray] = {}


def blank_darkness(template: FormTemplate, page_number: int) -> np.ndarray:
    """The blank page at REFINE_PX_PER_MM as darkness 0..1 (cached per template page): rendered from the template,
    or a reference-image page's scan with the inside of every box wiped (its handwriting is not the photo's)."""
    key = (template.id, template.version, page_number, hash(template.page(page_number)))
    if key not in _blank_cache:
        page = template.page(page_number)
        if page.reference is None:
            blank = render_page(template, page_number, REFINE_PX_PER_MM * MM_PER_INCH)
        else:
            scan = reference_scan(page.reference)
            scale = REFINE_PX_PER_MM / page.reference.px_per_mm
            blank = cv2.resize(scan, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            for field in page.fields:
                for x, y, w, h in field.boxes_mm:
                    inset = field.stroke_mm * 1.5
                    x0, y0, x1, y1 = window_px((x + inset, y + inset, w - 2 * inset, h - 2 * inset), 0.0)
                    blank[y0:y1 - 1, x0:x1 - 1] = 255
        _blank_cache[key] = (255 - blank.astype(np.float32)) / 255
    return _blank_cache[key]


def checkable_edges(template: FormTemplate, page_number: int) -> np.ndarray | None:
    """(boxes, 4) which box edges stand out from what is printed beside them on the reference scan (a box edge
    that touches a black bar cannot be checked in a photo either); None for a rendered page (all can)."""
    page = template.page(page_number)
    if page.reference is None:
        return None
    key = (template.id, template.version, page_number, hash(page))
    if key not in _checkable_cache:
        corners = np.array([rect_corners(b) for f in page.fields for b in f.boxes_mm])
        strokes = np.array([f.stroke_mm for f in page.fields for _ in f.boxes_mm])
        mm_to_scan = np.diag([page.reference.px_per_mm, page.reference.px_per_mm, 1.0])
        _checkable_cache[key] = edges_on_lines(reference_scan(page.reference), mm_to_scan, corners, strokes)
    return _checkable_cache[key]


def window_px(rect_mm: RectMM, margin_mm: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) px at REFINE_PX_PER_MM of a rectangle grown by `margin_mm`."""
    x, y, w, h = rect_mm
    r = REFINE_PX_PER_MM
    return (int(np.floor((x - margin_mm) * r)), int(np.floor((y - margin_mm) * r)),
            int(np.ceil((x + w + margin_mm) * r)) + 1, int(np.ceil((y + h + margin_mm) * r)) + 1)


def cut_window(blank: np.ndarray, box_px: tuple[int, int, int, int]) -> np.ndarray:
    """`blank[y0:y1, x0:x1]`, padded with zeros where the window leaves the array."""
    x0, y0, x1, y1 = box_px
    if x0 >= 0 and y0 >= 0 and x1 <= blank.shape[1] and y1 <= blank.shape[0]:
        return blank[y0:y1, x0:x1]
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(blank.shape[1], x1), min(blank.shape[0], y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = blank[sy0:sy1, sx0:sx1]
    return out


def centred(profile: np.ndarray) -> tuple[np.ndarray, float]:
    """A blank page's profile less its mean, and its norm: what refine's correlation compares a photo's profile with."""
    e = profile - profile.mean()
    return e, float(np.sqrt((e * e).sum()))


@dataclass(frozen=True)
class Expected:
    """What the blank page shows around a box: its window (page px), profiles and darkest lines; the same for every
    photo of the template, so made once."""

    inner: tuple[int, int, int, int]
    shape: tuple[int, int]
    cols: tuple[np.ndarray, float]  # column profile (mean darkness of each column), centred, and its norm
    rows: tuple[np.ndarray, float]  # row profile, the same
    lines: np.ndarray  # uint8 mask (1) of the window where the blank page is darkest, as OpenCV takes a mask


_expected_cache: dict[tuple[int, RectMM], Expected] = {}


def expected_at(blank: np.ndarray, rect_mm: RectMM) -> Expected:
    """What `blank` (a page of `blank_darkness`) shows around `rect_mm`, CONTEXT_MM included; cached."""
    key = (id(blank), rect_mm)  # blank pages live in _blank_cache for the process: their ids stay theirs
    if key not in _expected_cache:
        inner = window_px(rect_mm, CONTEXT_MM)
        window = cut_window(blank, inner)
        lines = (window > 0.5 * window.max()).view(np.uint8) if window.max() > 0 else np.zeros(window.shape, np.uint8)
        _expected_cache[key] = Expected(inner, window.shape, centred(cv2.reduce(window, 0, cv2.REDUCE_AVG).ravel()),
                                        centred(cv2.reduce(window, 1, cv2.REDUCE_AVG).ravel()), lines)
    return _expected_cache[key]


def edges_on_lines(gray: np.ndarray, page_homography: np.ndarray, corners_mm: np.ndarray,
                   strokes_mm: np.ndarray) -> np.ndarray:
    """(n, 4): for each box (corners (n, 4, 2) mm), whether each of its edges as placed lies on a printed line: darker
    than what lies just outside them. A box placed 1.5 mm off puts an edge on paper beside its line, or its
    outside on the line."""
    along = np.linspace(0.2, 0.8, 9)[None, None, :, None]
    a, b = corners_mm, np.roll(corners_mm, -1, axis=1)  # (n, 4, 2): each edge from a to b
    edge = a[:, :, None] + (b - a)[:, :, None] * along  # (n, 4, 9, 2)
    direction = (b - a) / (np.linalg.norm(b - a, axis=2, keepdims=True) + 1e-9)
    normal = np.stack([direction[..., 1], -direction[..., 0]], axis=2)
    outward = np.sign((((a + b) / 2 - corners_mm.mean(axis=1, keepdims=True)) * normal).sum(axis=2, keepdims=True))
    side = (strokes_mm / 2 + 1.2)[:, None, None]  # mm beyond the line's half width, blur included
    beside = edge + (normal * outward * side)[:, :, None, :]
    px = map_points(page_homography, np.concatenate([edge, beside]).reshape(-1, 2)).astype(np.float32)
    samples = cv2.remap(gray, px[:, 0].reshape(-1, 1), px[:, 1].reshape(-1, 1), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).astype(np.float32).reshape(2, *edge.shape[:3])
    line, outside = np.median(samples[0], axis=2), np.median(samples[1], axis=2)  # (n, 4)
    return line < outside - np.maximum(6.0, 0.08 * outside)

"""Markers: the page's four corner markers found in a photo and assigned to the page's corners.

Markers are found on a reduced copy of the photo: black squares (contours of an adaptive
threshold, slightly eroded so that a marker's two squares come apart) paired when they touch at a
corner, or one bow-tie blob where blur kept them joined. Four (or three) markers are assigned to
the page corners by the direction of their diagonal, which rules out 90-degree mistakes (the
180-degree ambiguity is the page tag's to settle: locate.py). Marker centres are refined to
sub-pixel on the full-resolution image (`cv2.cornerSubPix` on the checker saddle).

Pixel coordinates are (x, y) in the photo as displayed; page coordinates are mm from the page's
top-left.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.geometry import map_points, rectify
from ocr.templates.model import FormTemplate

MAX_CANDIDATES = 12  # the largest marker-like blobs; more only slow the search for four


@dataclass(frozen=True)
class MarkerCandidate:
    """Two black squares touching at a corner, in full-resolution px."""

    centre: np.ndarray  # (x, y)
    square_px: float  # side of one square
    diagonal: np.ndarray  # unit vector from one square's centre to the other's


def _blob_axes(m: dict) -> tuple[float, float, np.ndarray]:
    """Variances along the major and minor axes of a blob, and the major axis' unit vector."""
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    spread = np.sqrt(((mu20 - mu02) / 2) ** 2 + mu11 ** 2)
    angle = 0.5 * np.arctan2(2 * mu11, mu20 - mu02)
    return (mu20 + mu02) / 2 + spread, (mu20 + mu02) / 2 - spread, np.array([np.cos(angle), np.sin(angle)])


def _is_paper(dark: np.ndarray, point: np.ndarray) -> bool:
    x, y = np.round(point).astype(int)
    return 0 <= x < dark.shape[1] and 0 <= y < dark.shape[0] and not dark[y, x]


def find_marker_candidates(small: np.ndarray, scale: float) -> list[MarkerCandidate]:
    """Checker markers in the reduced image, returned in full-resolution px (not yet sub-pixel).

    After a light erosion a marker is either two solid squares that touch at a corner (paired
    here) or, where blur kept them joined, one bow-tie blob whose centroid is the checker point.
    """
    block = max(15, int(max(small.shape) / 25) | 1)
    dark = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 20)
    eroded = cv2.erode(dark, np.ones((3, 3), np.uint8))
    # Every contour, not only outer ones: a shadow band round the page would otherwise hide what it encloses.
    contours, _ = cv2.findContours(eroded, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    squares: list[tuple[np.ndarray, float, np.ndarray]] = []  # (centre, side, outline points)
    found: list[tuple[np.ndarray, float, np.ndarray]] = []  # (centre, side, diagonal) in small px
    for k in _sized_contours(contours, 4 * small.size / 200):
        contour = contours[k]
        x, y, w, h = cv2.boundingRect(contour)
        m = cv2.moments(contour)
        inked = np.count_nonzero(eroded[y:y + h, x:x + w])
        if inked < 0.8 * m["m00"]:  # hollow (a box frame) or holed (the tag)
            continue
        centre = np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
        major, minor, axis = _blob_axes(m)
        if major < 3.5 * minor and inked > 0.45 * w * h:  # a square, or the parallelogram a tilt makes of it
            squares.append((centre, np.sqrt(inked) + 2.0, contour.reshape(-1, 2)))  # erosion took ~1 px off each edge
            continue
        # Bow tie: two squares of side s along the major axis (variances 7 s^2/12 and s^2/12).
        side = np.sqrt(inked / 2) + 1.0
        if 4 < major / max(minor, 1e-6) < 20 and not _is_paper(dark, centre):
            lobes = [centre + k * 0.6 * side * axis for k in (-1, 1)]
            across = [centre + k * 0.6 * side * np.array([-axis[1], axis[0]]) for k in (-1, 1)]
            if all(not _is_paper(dark, p) for p in lobes) and all(_is_paper(dark, p) for p in across):
                found.append((centre, side, axis))
    if len(squares) >= 2:
        pts, side = np.array([c for c, _, _ in squares]), np.array([s for _, s, _ in squares])
        d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
        mean_side = (side[:, None] + side[None]) / 2
        ratio = np.maximum(side[:, None], side[None]) / np.minimum(side[:, None], side[None])
        # Loose on distance (a tilted page shears squares into parallelograms), strict on touching corners.
        pairs = np.argwhere((d > 0.9 * mean_side) & (d < 2.2 * mean_side) & (ratio < 1.6))
        for i, j in pairs[pairs[:, 0] < pairs[:, 1]]:
            gap = np.linalg.norm(squares[i][2][:, None] - squares[j][2][None], axis=2).min()
            if gap > max(6.0, 0.5 * mean_side[i, j]):  # eroded, blurred corners of touching squares: 3-6 px apart
                continue
            a, b = pts[i], pts[j]
            mid, perp = (a + b) / 2, np.array([b[1] - a[1], a[0] - b[0]]) / 2
            # The other two quadrants are paper (probed on the eroded map: shear skews them off the perpendicular).
            if all(_is_paper(eroded, mid + k * 0.7 * perp) for k in (-1, 1)):
                found.append((mid, mean_side[i, j], (b - a) / np.linalg.norm(b - a)))
    return _dedupe([MarkerCandidate(centre=(c + 0.5) / scale - 0.5, square_px=s / scale, diagonal=v)
                    for c, s, v in found])


def _sized_contours(contours: tuple[np.ndarray, ...], max_box_px: float) -> np.ndarray:
    """Indices of the contours whose bounding box holds 9 to `max_box_px` px and whose outline encloses at least 4
    (what a marker square or bow tie needs), found for all at once: a page's text makes a thousand small ones."""
    if not contours:
        return np.empty(0, int)
    sizes = np.fromiter((len(c) for c in contours), int, len(contours))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    points = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    extent = np.maximum.reduceat(points, starts) - np.minimum.reduceat(points, starts) + 1
    box = extent[:, 0] * extent[:, 1]
    # The enclosed area by the shoelace formula: cv2.moments' m00 of a contour, exactly (integer points).
    following = np.roll(points, -1, axis=0)
    following[starts + sizes - 1] = points[starts]  # each outline closes on its own first point
    cross = points[:, 0] * following[:, 1] - following[:, 0] * points[:, 1]
    area = np.abs(np.add.reduceat(cross, starts)) / 2
    return np.flatnonzero((box >= 9) & (box <= max_box_px) & (area >= 4))


def _dedupe(cands: list[MarkerCandidate]) -> list[MarkerCandidate]:
    kept: list[MarkerCandidate] = []
    for c in sorted(cands, key=lambda c: -c.square_px):
        if all(np.linalg.norm(c.centre - k.centre) > k.square_px for k in kept):
            kept.append(c)
    return kept


def refine_marker(gray: np.ndarray, cand: MarkerCandidate) -> np.ndarray:
    """Sub-pixel checker saddle point near `cand.centre` on the full-resolution image."""
    half = int(np.clip(cand.square_px * 0.4, 2, 30))
    point = cand.centre.reshape(1, 1, 2).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.01)
    refined = cv2.cornerSubPix(gray, point.copy(), (half, half), (-1, -1), criteria)[0, 0]
    # A refinement that wandered off the saddle keeps the coarse estimate.
    return refined if np.linalg.norm(refined - cand.centre) < cand.square_px * 0.5 else cand.centre


def local_px_per_mm(h: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Photo px per page mm at each of `points_mm` (n, 2) under `h` (square root of the local area scale)."""
    at = np.asarray(points_mm, np.float64)[:, None, :] + np.array([[0, 0], [1, 0], [0, 1]], np.float64)[None]
    return _area_scale(map_points(h, at))


def _area_scale(mapped: np.ndarray) -> np.ndarray:
    """(...,) square root of the area spanned at each point by (..., 3+, 2) photo px of the point, one mm along x
    and one along y."""
    u, v = mapped[..., 1, :] - mapped[..., 0, :], mapped[..., 2, :] - mapped[..., 0, :]
    return np.sqrt(np.abs(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]))


def page_corners_mm(template: FormTemplate) -> np.ndarray:
    return np.array(template.markers.centres_mm(), dtype=np.float64)


def plausible_combos(cands: list[MarkerCandidate], n: int) -> np.ndarray:
    """(k, n) indices of the sets of `n` candidates that could be the page's corner markers, each set in clockwise
    order. All sets are tested at once: twelve candidates make 495 sets of four."""
    if len(cands) < n:
        return np.empty((0, n), int)
    combos = np.array(list(itertools.combinations(range(len(cands)), n)), int).reshape(-1, n)
    sizes = np.array([c.square_px for c in cands])[combos]
    centres = np.array([c.centre for c in cands])[combos]  # (sets, n, 2)
    centred = centres - centres.mean(axis=1, keepdims=True)
    order = np.argsort(np.arctan2(centred[..., 1], centred[..., 0]), axis=1)  # clockwise on the image (y down)
    combos = np.take_along_axis(combos, order, axis=1)
    pts = np.take_along_axis(centres, order[..., None], axis=1).astype(np.float32)
    # Markers are ~70 squares apart along the page's short side: nearer ones are not the page's corners;
    # and no tilt makes one side of the marker quadrilateral over 4 times another.
    sides = np.linalg.norm(pts - np.roll(pts, -1, axis=1), axis=2)[:, : n if n == 4 else n - 1]
    smallest = sizes.min(axis=1)
    plausible = ((sizes.max(axis=1) <= 2.0 * smallest)  # perspective up to ~35 degrees changes a marker's size less
                 & (sides.min(axis=1) >= 25 * smallest) & (sides.max(axis=1) <= 4 * sides.min(axis=1)))
    return combos[plausible]


def assignments(cands: list[MarkerCandidate], template: FormTemplate, n: int):
    """(slots, candidates, homography or affine) for every plausible assignment of markers to page corners.

    A photo is no mirror image, so markers keep the page's clockwise order: four markers have four
    assignments (one per rotation), three have twelve (which corner is hidden x rotation). All are fitted
    and checked at once, in array operations (a photo has a few hundred); yielded in combination order.
    """
    combos = plausible_combos(cands, n)
    if not len(combos):
        return
    corners_mm = page_corners_mm(template)
    orders = [[k for k in range(4) if k != missing] for missing in ([None] if n == 4 else range(4))]
    slot_sets = np.array([[order[(j + turn) % n] for j in range(n)] for order in orders for turn in range(n)])
    per = len(slot_sets)
    src = np.tile(corners_mm[slot_sets].astype(np.float32), (len(combos), 1, 1))  # (combos x slot sets, n, 2)
    centres = np.array([c.centre for c in cands], np.float32)
    dst = np.repeat(centres[combos], per, axis=0)
    transforms = _fit_transforms(src.astype(np.float64), dst.astype(np.float64))
    picked = np.repeat(combos, per, axis=0)
    diagonals = np.array([c.diagonal for c in cands])[picked]
    sizes = np.array([c.square_px for c in cands])[picked]
    for i in np.flatnonzero(_consistent(transforms, src.astype(np.float64), diagonals, sizes,
                                        template.markers.square_mm)):
        yield tuple(int(k) for k in slot_sets[i % per]), [cands[k] for k in picked[i]], transforms[i]


def _fit_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(k, 3, 3) transforms taking each set of points src (k, n, 2) onto dst (k, n, 2): through four points the
    perspective transform (cv2.getPerspectiveTransform's system), through three the affine one. A degenerate set
    gets an all-zero matrix, which no check passes."""
    k, n = src.shape[:2]
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    unknowns = 8 if n == 4 else 6
    rows_u = [x, y, one, zero, zero, zero] + ([-x * u, -y * u] if n == 4 else [])
    rows_v = [zero, zero, zero, x, y, one] + ([-x * v, -y * v] if n == 4 else [])
    system = np.concatenate([np.stack(rows_u, axis=2), np.stack(rows_v, axis=2)], axis=1)  # (k, 2n, unknowns)
    target = np.concatenate([u, v], axis=1)
    singular = np.linalg.det(system) == 0
    system[singular] = np.eye(unknowns)
    solved = np.linalg.solve(system, target[..., None])[..., 0]
    solved[singular] = 0
    out = np.zeros((k, 3, 3))
    out[:, :2, :] = solved[:, :6].reshape(k, 2, 3)
    out[:, 2, :2] = solved[:, 6:] if n == 4 else 0
    out[:, 2, 2] = np.where(singular, 0, 1)
    return out


def _map_many(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`points` (k, m, 2) each through its own homography h (k, 3, 3)."""
    mapped = np.einsum("kij,kmj->kmi", h[:, :, :2], points) + h[:, None, :, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return mapped[..., :2] / mapped[..., 2:]


def _consistent(h: np.ndarray, src_mm: np.ndarray, diagonals: np.ndarray, sizes_px: np.ndarray,
                square_mm: float) -> np.ndarray:
    """(k,) whether each pose h (k, 3, 3) explains its markers' diagonal directions (k, n, 2, unit) and square
    sizes (k, n, px) at src_mm (k, n, 2), and keeps the page convex."""
    k, n = src_mm.shape[:2]
    ok = np.abs(np.linalg.det(h[:, :2, :2])) >= 1e-9
    # Each marker's centre, one mm along x, along y and along its diagonal, all in one transform.
    steps = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float64)
    p = _map_many(h, (src_mm[:, :, None, :] + steps).reshape(k, n * 4, 2)).reshape(k, n, 4, 2)
    diag = p[:, :, 3] - p[:, :, 0]
    with np.errstate(invalid="ignore"):
        ok &= (np.abs((diag * diagonals).sum(axis=2)) / (np.linalg.norm(diag, axis=2) + 1e-12) >= 0.85).all(axis=1)
        size_ratio = sizes_px / (square_mm * _area_scale(p))
        ok &= ((size_ratio > 0.6) & (size_ratio < 1.6)).all(axis=1)
    return ok & _orientations_preserved(h)


def _orientations_preserved(h: np.ndarray) -> np.ndarray:
    """(k,) for homographies h (k, 3, 3): whether each keeps the page's corners in clockwise order."""
    quad = _map_many(h, np.broadcast_to(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64) * 100, (len(h), 4, 2)))
    nxt = np.roll(quad, -1, axis=1)
    with np.errstate(invalid="ignore"):
        return (quad[..., 0] * nxt[..., 1] - nxt[..., 0] * quad[..., 1]).sum(axis=1) > 0


def orientation_preserved(h: np.ndarray) -> bool:
    """A photo is not a mirror image: the page's corners keep their clockwise order."""
    return bool(_orientations_preserved(np.asarray(h, np.float64)[None])[0])


def find_marker_near(gray: np.ndarray, template: FormTemplate, h: np.ndarray, slot: int) -> np.ndarray | None:
    """The checker point of corner marker `slot` (0 TL .. 3 BL) searched within 12 mm of where `h` puts it:
    the photo rectified around it is matched with the printed marker, then refined to sub-pixel. None when
    nothing there looks like the marker (hidden by a finger, outside the photo)."""
    r, reach = 4.0, 12.0
    side = template.markers.square_mm
    cx, cy = template.markers.centres_mm()[slot]
    half = side + reach
    size = int(2 * half * r)
    window = rectify(gray, h, (cx - half, cy - half), (size, size), r, border=cv2.BORDER_CONSTANT, border_value=128)
    s = int(side * r)
    checker = np.full((2 * s, 2 * s), 255, np.uint8)
    checker[:s, :s] = 0
    checker[s:, s:] = 0
    scores = cv2.matchTemplate(window, checker, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    if best < 0.6:
        return None
    centre_mm = np.array([[(x + s) / r + cx - half, (y + s) / r + cy - half]])
    guess = map_points(h, centre_mm[0])
    square_px = float(local_px_per_mm(h, [(cx, cy)])[0]) * side
    return refine_marker(gray, MarkerCandidate(centre=guess, square_px=square_px, diagonal=np.array([1.0, 0.0])))

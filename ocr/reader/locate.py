"""Locate: find the page in a photo from its corner markers and page tag, as a homography page mm -> photo px.

The corner markers are found and assigned to the page's corners by markers.py (which settles
90-degree turns), on a copy of the photo reduced to a quarter of its side first (a page that fills
a 12 MP photo: its markers are 6 px or more there), and on a half-size copy when that does not
give four markers and a tag that agree; the 180-degree ambiguity is settled by the page tag, decoded in a small
rectified window where each hypothesis puts it. Four markers define the homography; the tag's
corners check it (three markers: all seven points are fitted, and the fourth is looked for again).

Pixel coordinates are (x, y) in the photo as displayed; page coordinates are mm from the page's
top-left. `page_homography` maps page mm to photo px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.geometry import map_points, scaled, warp_to_window, window_to_photo
from ocr.reader.levels import percentiles
from ocr.reader.markers import (
    MAX_CANDIDATES,
    assignments,
    find_marker_candidates,
    find_marker_near,
    page_corners_mm,
    refine_marker,
)
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.templates.model import FormTemplate, rect_corners

LOCATE_MIN_LONG_SIDE_PX = 1200  # markers (7.2 mm squares) stay >= 6 px at 35 % page fill of 12 MP
LOCATE_QUICK_LONG_SIDE_PX = 900  # a copy halved again is tried first: a page filling the photo is found there
TAG_WINDOW_PX_PER_MM = 4.0  # 16 px per tag cell
TAG_MARGIN_MM = 10.0
TAG_MARGIN_AFFINE_MM = 30.0  # three markers only give an affine guess of where the tag is
GOOD_RESIDUAL_MM = 1.5  # tag corners this close to the markers' homography: no need to try other hypotheses

# What read_tag and locate return when they find nothing (made once: read_tag fails for most hypotheses it tries).
NO_TAG = Refusal(ReasonCode.UNKNOWN_TEMPLATE, "no page tag could be read where the corner markers put it: take the "
                 "photo again with the tag (the square code at the page's top right) in focus and not covered")
NO_MARKERS = Refusal(ReasonCode.NO_PAGE_FOUND, "no page found: not four corner markers (nor three and the page tag) "
                     "where a page would put them; photograph the whole page, flat, with its four corner squares visible")


def _tag_detector() -> cv2.aruco.ArucoDetector:
    """The tag fills a known share of a small rectified window: one threshold pass, big candidates only."""
    params = cv2.aruco.DetectorParameters()
    params.adaptiveThreshWinSizeMin = params.adaptiveThreshWinSizeMax = 31
    params.minMarkerPerimeterRate = 1.0  # rates are perimeter / the window's side; the tag's is about 2.5
    params.maxMarkerPerimeterRate = 4.0
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h10), params)


_ARUCO = _tag_detector()


@dataclass(frozen=True)
class TagRead:
    tag_id: int
    corners_px: np.ndarray  # (4, 2) in the detector's order: the tag's own top-left first, clockwise


@dataclass(frozen=True)
class Located:
    """The page's pose in the photo, before the template is known for sure."""

    page_homography: np.ndarray  # (3, 3): page mm -> photo px
    markers_found: int  # of 4
    corner_slots: tuple[int, ...]  # which page corners (0 TL, 1 TR, 2 BR, 3 BL) have a marker
    tag: TagRead | None
    residual_mm: float  # largest distance (mm) between a checking point and where the homography puts it
    tag_darkness: float  # share of dark pixels where the tag should be: high on the right orientation


def reduce_for_locating(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy reduced by a power of two (OpenCV's fast path) to no less than LOCATE_MIN_LONG_SIDE_PX, and its scale."""
    factor = 1
    while max(gray.shape) / (factor * 2) >= LOCATE_MIN_LONG_SIDE_PX:
        factor *= 2
    if factor == 1:
        return gray, 1.0
    return cv2.resize(gray, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA), 1 / factor


def _tag_window(gray: np.ndarray, template: FormTemplate, h: np.ndarray,
                margin_mm: float = TAG_MARGIN_MM) -> tuple[np.ndarray, np.ndarray]:
    """The page tag and `margin_mm` around it rectified at TAG_WINDOW_PX_PER_MM, and its window px -> photo px."""
    x, y, w, _ = template.tag_rect_mm
    r = TAG_WINDOW_PX_PER_MM
    to_photo = window_to_photo(h, (x - margin_mm, y - margin_mm), r)
    size = int((w + 2 * margin_mm) * r)
    return warp_to_window(gray, to_photo, (size, size)), to_photo


def tag_darkness(small: np.ndarray, scale: float, template: FormTemplate, h: np.ndarray) -> float:
    """Share of dark pixels where `h` (page mm -> full px) puts the tag, measured on the reduced image:
    about half on the tag, little on blank paper or text."""
    window, _ = _tag_window(small, template, scaled(h, out_scale=scale))
    m = int(TAG_MARGIN_MM * TAG_WINDOW_PX_PER_MM)
    inner = window[m:-m, m:-m]
    return float(np.mean(inner < (int(percentiles(window, 90)) + int(inner.min())) / 2))


def read_tag(gray: np.ndarray, template: FormTemplate, h: np.ndarray,
             margin_mm: float = TAG_MARGIN_MM) -> TagRead | Refusal:
    """Decode the page tag in a small window rectified where `h` puts it; NO_TAG when none (or two) is read."""
    window, to_photo = _tag_window(gray, template, h, margin_mm)
    corners, ids, _ = _ARUCO.detectMarkers(window)
    if ids is None or len(ids) != 1:
        return NO_TAG
    in_photo = map_points(to_photo, corners[0][0])
    return TagRead(tag_id=int(np.ravel(ids)[0]), corners_px=in_photo)


def find_tags(image: np.ndarray) -> list[TagRead]:
    """Every page tag anywhere in `image` (slow on a whole photo: for diagnosing a page not located)."""
    corners, ids, _ = cv2.aruco.ArucoDetector(_ARUCO.getDictionary()).detectMarkers(image)
    if ids is None:
        return []
    return [TagRead(tag_id=int(i), corners_px=c[0].astype(np.float64)) for c, i in zip(corners, np.ravel(ids))]


def tag_corners_mm(template: FormTemplate) -> np.ndarray:
    """The tag's corners in page mm in the detector's order (the tag's own top-left first, clockwise)."""
    shift = (4 - template.tag_rotation_deg // 90) % 4
    return np.roll(rect_corners(template.tag_rect_mm), -shift, axis=0)


def fit_homography(markers_mm: np.ndarray, markers_px: np.ndarray, tag_mm: np.ndarray | None,
                   tag_px: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Page mm -> photo px homography, and the largest residual (mm) of the points that check it.

    Four markers span the page and define the homography exactly; the tag's corners, close
    together in one corner of the page, then only check it (a fit that weighed them equally
    could tilt the far side of a bent page). With three markers, all seven points are fitted by
    least squares.
    """
    if len(markers_mm) == 4:
        h = cv2.getPerspectiveTransform(markers_mm.astype(np.float32), markers_px.astype(np.float32)).astype(np.float64)
        check_mm, check_px = tag_mm, tag_px
    else:
        if tag_mm is None:
            raise ValueError("three markers need the tag's corners to fix the homography")
        check_mm, check_px = np.vstack([markers_mm, tag_mm]), np.vstack([markers_px, tag_px])
        h, _ = cv2.findHomography(check_mm, check_px, 0)
    if check_mm is None:
        return h, 0.0
    back = map_points(np.linalg.inv(h), check_px.reshape(-1, 2))
    return h, float(np.max(np.linalg.norm(back - check_mm, axis=1)))


def locate(gray: np.ndarray, template: FormTemplate) -> Located | Refusal:
    """The best pose of a page drawn like `template` (markers and tag layout), or NO_MARKERS (no_page_found).

    Hypotheses are tried where they put the most ink on the tag; among those whose tag reads, the
    one whose tag corners agree best with its markers wins (a false marker shows as a large residual).
    """
    small, scale = reduce_for_locating(gray)
    if max(small.shape) // 2 >= LOCATE_QUICK_LONG_SIDE_PX:
        # A quarter of the pixels to search; only a pose that leaves nothing to try elsewhere is taken from it (far
        # markers of a tilted or distant page can shrink below what the halved copy shows).
        quick = _locate_on(gray, cv2.resize(small, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), scale / 2,
                           template)
        if quick and quick.tag is not None and quick.markers_found == 4 and quick.residual_mm < GOOD_RESIDUAL_MM:
            return quick
    return _locate_on(gray, small, scale, template)


def _locate_on(gray: np.ndarray, small: np.ndarray, scale: float, template: FormTemplate) -> Located | Refusal:
    """`locate` with markers searched in `small`, the photo reduced by `scale`; tags and markers read on `gray`."""
    cands = find_marker_candidates(small, scale)[:MAX_CANDIDATES]
    corners_mm = page_corners_mm(template)
    tag_mm = tag_corners_mm(template)
    best: Located | None = None
    untagged: tuple | None = None
    for n in (4, 3):  # three markers only when no four explain the photo with a readable tag
        hypotheses = sorted(((slots, chosen, h, tag_darkness(small, scale, template, h))
                             for slots, chosen, h in assignments(cands, template, n)), key=lambda hyp: -hyp[3])
        for slots, chosen, h, darkness in hypotheses:
            tag = read_tag(gray, template, h, TAG_MARGIN_MM if n == 4 else TAG_MARGIN_AFFINE_MM)
            if not tag:
                if untagged is None and n == 4:
                    untagged = (slots, chosen, darkness)
                continue
            markers_px = np.array([refine_marker(gray, c) for c in chosen])
            fitted, residual = fit_homography(corners_mm[list(slots)], markers_px, tag_mm, tag.corners_px)
            if n == 3:  # look again for the fourth where the other three and the tag put it
                missing = next(k for k in range(4) if k not in slots)
                found = find_marker_near(gray, template, fitted, missing)
                if found is not None:
                    slots = tuple(slots) + (missing,)
                    markers_px = np.vstack([markers_px, found])
                    fitted, residual = fit_homography(corners_mm[list(slots)], markers_px, tag_mm, tag.corners_px)
            if best is None or residual < best.residual_mm:
                best = Located(page_homography=fitted, markers_found=len(slots), corner_slots=slots, tag=tag,
                               residual_mm=residual, tag_darkness=darkness)
            if residual < GOOD_RESIDUAL_MM:
                return best
        if best is not None:
            return best
    if untagged is None:
        return NO_MARKERS
    # Four markers and no readable tag: the darkest tag place gives the orientation; identify by title.
    slots, chosen, darkness = untagged
    markers_px = np.array([refine_marker(gray, c) for c in chosen])
    fitted, residual = fit_homography(corners_mm[list(slots)], markers_px, None, None)
    return Located(page_homography=fitted, markers_found=4, corner_slots=slots, tag=None, residual_mm=residual,
                   tag_darkness=darkness)

"""The page of a scan or photo, found with no template: corner markers (their homography gives page mm), page tag.

A flat scan whose scale is known (`px_per_mm`) keeps its own pixels as page mm, deskewed by the markers when it has
them. A photo has no scale of its own: the four markers give the page's plane, the page tag (a square) its aspect,
and the side of a marker square as measured on the paper (`marker_square_mm`) its scale. Orientation: the markers'
checker diagonals fix it up to a half turn, and the page tag, printed in the page's top half, settles that.

Pixel coordinates are (x, y) in the image as given (EXIF already applied); a page homography maps page mm -> image px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.geometry import map_points, rectify
from ocr.reader.locate import find_tags, reduce_for_locating
from ocr.reader.markers import (
    MAX_CANDIDATES,
    MarkerCandidate,
    find_marker_candidates,
    local_px_per_mm,
    plausible_combos,
    refine_marker,
)
from ocr.reader.reference import flatten
from ocr.templates.model import Markers, RectMM, rect_corners

LEARN_PX_PER_MM = 5.0  # the rectified page every later step works on: a 1 mm frame line is 5 px
PHOTO_MARGIN_SQUARES = 4.0  # a photo's page reaches this many marker squares beyond the markers (its edge is unknown)
PAPER_WORK_PX = 1000  # the sheet's outline is found at this long side
MIN_PAPER_SHARE = 0.1  # of the photo's area
MAX_PAPER_SHARE = 0.97  # a bright region this large is the background too (a sheet on white marble)
# A sheet photographed at 1.7 px/mm, flattened at that and then enlarged for learning, lost its box lines to the two
# interpolations now and then (a 2019 plano photo: its date boxes found or not by a grey level); at 3 they stay.
FLAT_MIN_PX_PER_MM = 3.0
PAPER_OUTLINE_SHARES = (0.02, 0.03, 0.045, 0.06, 0.08)  # of the outline's length: how far a corner may be cut
MARKER_SIZE_SPREAD = 1.25  # largest / smallest marker square side over its homography's local scale on one page


@dataclass(frozen=True)
class NotLearned:
    """Why no template could be learned from an image; falsy, so `if learned:` reads as "if it worked"."""

    message: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class PageTag:
    tag_id: int
    rect_mm: RectMM
    rotation_deg: int  # counter-clockwise turn of the printed tag (the template's tag_rotation_deg)


@dataclass(frozen=True)
class PageFrame:
    """Where the page lies in the image, and what locates it."""

    page_homography: np.ndarray  # (3, 3): page mm -> image px
    page_size_mm: tuple[float, float]  # (width, height)
    markers: Markers | None
    tag: PageTag | None

    def rectified(self, gray: np.ndarray, px_per_mm: float = LEARN_PX_PER_MM) -> np.ndarray:
        """The whole page at `px_per_mm`: window px (u, v) is page mm (u, v) / px_per_mm."""
        w, h = self.page_size_mm
        return rectify(gray, self.page_homography, (0.0, 0.0), (round(w * px_per_mm), round(h * px_per_mm)),
                       px_per_mm, border=cv2.BORDER_CONSTANT, border_value=255)


def _corner_marker_sets(gray: np.ndarray) -> list[list[MarkerCandidate]]:
    """Sets of four marker candidates that could be the page's corners, clockwise on the image, largest first."""
    cands = find_marker_candidates(*reduce_for_locating(gray))[:MAX_CANDIDATES]
    centres = np.array([c.centre for c in cands], np.float32)
    combos = sorted(plausible_combos(cands, 4), key=lambda combo: -cv2.contourArea(centres[combo]))
    return [[cands[k] for k in combo] for combo in combos]


def _turns_fitting_diagonals(chosen: list[MarkerCandidate], centres_px: np.ndarray) -> list[int]:
    """Which rotations (marker k of the clockwise list is page corner (k - turn) % 4) map every marker's page
    diagonal, TL to BR square, onto its checker diagonal in the image: two, half a turn apart."""
    unit = rect_corners((0.0, 0.0, 1.0, 1.0))
    fitting = []
    for turn in range(4):
        h = cv2.getPerspectiveTransform(unit.astype(np.float32), np.roll(centres_px, -turn, axis=0).astype(np.float32))
        along = map_points(h, unit + 0.01) - map_points(h, unit)
        along /= np.linalg.norm(along, axis=1, keepdims=True)
        diagonals = np.roll(np.array([c.diagonal for c in chosen]), -turn, axis=0)
        if (np.abs((along * diagonals).sum(axis=1)) >= 0.85).all():
            fitting.append(turn)
    return fitting


def _sizes_agree(chosen: list[MarkerCandidate], centres_px: np.ndarray) -> bool:
    """Whether the four squares are one size on the paper: each square's side (image px) against the local scale there
    of the homography from a square onto the centres (TL, TR, BR, BL px). A stray dark square off the page, taken as a
    corner, bends that homography so that the squares' sides no longer follow it."""
    unit = rect_corners((0.0, 0.0, 1.0, 1.0))
    h = cv2.getPerspectiveTransform(unit.astype(np.float32), centres_px.astype(np.float32)).astype(np.float64)
    ratios = np.array([c.square_px for c in chosen]) / local_px_per_mm(h, unit)
    return max(ratios) <= MARKER_SIZE_SPREAD * min(ratios)


def _frame(corners_px: np.ndarray, span_mm: tuple[float, float], origin_mm: tuple[float, float],
           size_mm: tuple[float, float]) -> np.ndarray:
    """Page mm -> image px, putting the marker centres (TL, TR, BR, BL px) `span_mm` apart from `origin_mm`."""
    target = rect_corners((*origin_mm, *span_mm))
    return cv2.getPerspectiveTransform(target.astype(np.float32), corners_px.astype(np.float32)).astype(np.float64)


def _read_tag(page: np.ndarray, px_per_mm: float) -> PageTag | None:
    """The one page tag on the rectified page (read on a half-size copy: the whole page is large)."""
    tags = find_tags(cv2.resize(page, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    if len(tags) != 1:
        return None
    corners_mm = tags[0].corners_px * 2 / px_per_mm
    low, high = corners_mm.min(axis=0), corners_mm.max(axis=0)
    rect = (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))
    # The detector's first corner is the tag's own top-left: where it lies on the page is the print's turn.
    first = int(np.argmin(np.linalg.norm(rect_corners(rect) - corners_mm[0], axis=1)))
    return PageTag(tag_id=tags[0].tag_id, rect_mm=rect, rotation_deg=(4 - first) % 4 * 90)


def find_page(gray: np.ndarray, px_per_mm: float | None, marker_square_mm: float | None) -> PageFrame | NotLearned:
    """The page frame of a scan (`px_per_mm` known) or a photo (`marker_square_mm` known), or why there is none."""
    # The largest set whose squares are one size on the paper and whose checker diagonals all agree: a stray dark
    # square makes a larger set now and then.
    sets = [(chosen, np.array([refine_marker(gray, c) for c in chosen])) for chosen in _corner_marker_sets(gray)]
    fitting = next(((chosen, centres, turns) for chosen, centres in sets
                    if _sizes_agree(chosen, centres) and (turns := _turns_fitting_diagonals(chosen, centres))), None)
    if fitting is None and px_per_mm is not None:  # a flat scan of a form without markers: the page is the image
        height, width = gray.shape
        return PageFrame(np.diag([px_per_mm, px_per_mm, 1.0]), (width / px_per_mm, height / px_per_mm), None, None)
    if not sets:
        return NotLearned("no corner markers found: a photo needs its four corner markers; for a flat scan of a "
                          "form without markers give its resolution (--dpi) to learn a reference-image template")
    if px_per_mm is None and marker_square_mm is None:
        return NotLearned("a photo has no scale: give the side of one corner-marker square as measured on the paper "
                          "(--marker-mm), or the resolution of a flat scan (--dpi)")
    if fitting is None:
        return NotLearned("no four corner squares found are checker markers of one size with their diagonals the same way")
    chosen, centres, turns = fitting
    square_px = float(np.median([c.square_px for c in chosen]))
    frame = None
    for turn in turns:  # the tag's place decides between the two half-turn hypotheses
        frame = _page_frame(gray, np.roll(centres, -turn, axis=0), square_px, px_per_mm, marker_square_mm)
        if frame.tag is not None and frame.tag.rect_mm[1] + frame.tag.rect_mm[3] / 2 < frame.page_size_mm[1] / 2:
            return frame
    if frame.tag is None and px_per_mm is None:
        return NotLearned("corner markers found but no page tag: a photo's template needs the tag; learn the form "
                          "from a flat scan (--dpi) to make a reference-image template")
    return frame


def _page_frame(gray: np.ndarray, corners_px: np.ndarray, square_px: float, px_per_mm: float | None,
                marker_square_mm: float | None) -> PageFrame:
    """The frame for one assignment of the markers (TL, TR, BR, BL px) to the page's corners."""
    across = (np.linalg.norm(corners_px[1] - corners_px[0]) + np.linalg.norm(corners_px[2] - corners_px[3])) / 2
    down = (np.linalg.norm(corners_px[3] - corners_px[0]) + np.linalg.norm(corners_px[2] - corners_px[1])) / 2
    if px_per_mm is not None:  # a flat scan: the markers keep their distances, the page is the whole image
        span = (across / px_per_mm, down / px_per_mm)
        provisional = _frame(corners_px, span, (0.0, 0.0), span)
        image_h, image_w = gray.shape
        extent = map_points(np.linalg.inv(provisional), rect_corners((0.0, 0.0, image_w, image_h)))
        origin = (-float(extent[:, 0].min()), -float(extent[:, 1].min()))
        size = (float(np.ptp(extent[:, 0])), float(np.ptp(extent[:, 1])))
        h = _frame(corners_px, span, origin, size)
        square_mm = square_px / px_per_mm
        frame = PageFrame(h, size, _markers(origin, span, square_mm), None)
        return PageFrame(h, size, frame.markers, _read_tag(frame.rectified(gray), LEARN_PX_PER_MM))
    # A photo: first guess at the photo's mean scale, then the tag's squareness gives the aspect and the marker squares
    # the scale. A stretch of the target rectangle along x scales the tag's width alone, so one correction is exact.
    guess = marker_square_mm / square_px
    span = (across * guess, down * guess)
    margin = PHOTO_MARGIN_SQUARES * marker_square_mm
    frame = _photo_frame(corners_px, span, margin, marker_square_mm)
    tag = _read_tag(frame.rectified(gray), LEARN_PX_PER_MM)
    if tag is not None:
        span = (span[0] * tag.rect_mm[3] / tag.rect_mm[2], span[1])
        h = _frame(corners_px, span, (margin, margin), (span[0] + 2 * margin, span[1] + 2 * margin))
        measured = square_px / np.mean(local_px_per_mm(h, rect_corners((margin, margin, *span))))
        span = (span[0] * marker_square_mm / measured, span[1] * marker_square_mm / measured)
        frame = _photo_frame(corners_px, span, margin, marker_square_mm)
        frame = PageFrame(frame.page_homography, frame.page_size_mm, frame.markers,
                          _read_tag(frame.rectified(gray), LEARN_PX_PER_MM))
    return frame


def _photo_frame(corners_px: np.ndarray, span: tuple[float, float], margin: float, square_mm: float) -> PageFrame:
    size = (span[0] + 2 * margin, span[1] + 2 * margin)
    return PageFrame(_frame(corners_px, span, (margin, margin), size), size, _markers((margin, margin), span, square_mm),
                     None)


def _markers(origin_mm: tuple[float, float], span_mm: tuple[float, float], square_mm: float) -> Markers:
    """Markers whose checker points (centres) are the corners of the rectangle at `origin_mm` spanning `span_mm`."""
    centres = rect_corners((*origin_mm, *span_mm))
    return Markers(square_mm=round(square_mm, 2),
                   blocks_mm=tuple((round(x - square_mm, 2), round(y - square_mm, 2)) for x, y in centres))


def paper_corners(gray: np.ndarray, outline: str = "paper") -> np.ndarray | NotLearned:
    """The page's four corners in a photo (px, x y; TL, TR, BR, BL as the photo shows them), for a form printed without
    corner markers: `paper`, the outline of the largest bright region (the sheet on a darker background); `table`,
    the largest printed frame (the sheet on a background as light as itself: its table's outer lines)."""
    scale = min(1.0, PAPER_WORK_PX / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if outline == "table":
        mask = cv2.adaptiveThreshold(small, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 25, 10)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        what = "printed frame"
    else:
        _, mask = cv2.threshold(cv2.GaussianBlur(small, (5, 5), 0), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        # Close over the print and handwriting, so that the sheet is one region.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        what = "sheet"
    if not contours:
        return NotLearned(f"no {what} found: photograph the whole page (on a darker background, or give --outline table)")
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    if cv2.contourArea(hull) < MIN_PAPER_SHARE * small.size:
        return NotLearned(f"the {what} fills too little of the photo: photograph the whole page, closer")
    if outline == "paper" and cv2.contourArea(hull) > MAX_PAPER_SHARE * small.size:
        return NotLearned("the sheet cannot be told from its background (the bright region is the whole photo): "
                          "photograph it on a darker background, or give --outline table and the table's size")
    # The loosest outline that is still a quadrilateral: a shadow or a curled corner adds a short side or two.
    quads = (cv2.approxPolyDP(hull, share * cv2.arcLength(hull, True), True).reshape(-1, 2) for share in PAPER_OUTLINE_SHARES)
    quad = next((q for q in quads if len(q) == 4), cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True).reshape(-1, 2))
    quad = quad.astype(np.float64)
    if len(quad) != 4:
        return NotLearned(f"the {what}'s outline has {len(quad)} corners, not 4: photograph the whole page, flat, on a "
                          "darker background")
    by_sum, by_diff = quad.sum(axis=1), np.diff(quad, axis=1).ravel()  # x + y: TL least; y - x: BL most
    corners = quad[[np.argmin(by_sum), np.argmin(by_diff), np.argmax(by_sum), np.argmax(by_diff)]]
    if len({tuple(c) for c in corners}) < 4:
        return NotLearned(f"the {what}'s corners could not be told apart: photograph the page upright")
    return corners / scale


@dataclass(frozen=True)
class FlatPage:
    """A photo's sheet flattened by its outline: the scan a template of a form without markers is made on."""

    image: np.ndarray  # page mm (x, y) * px_per_mm = px
    px_per_mm: float
    corners_px: np.ndarray  # (4, 2) the page's corners TL, TR, BR, BL in the photo (px, x y), upright
    size_px: tuple[int, int]  # (w, h) of `image`

    def spec(self) -> dict:
        """How the template file says the photo is flattened (its page's `flattened`: FlattenedSpec)."""
        return {"corners_px": [[round(float(v), 2) for v in c] for c in self.corners_px], "size_px": list(self.size_px)}


def flat_page(gray: np.ndarray, page_size_mm: tuple[float, float], turn_deg: int = 0,
              outline: str = "paper") -> FlatPage | NotLearned:
    """The page of a photo flattened by its outline (`paper_corners`), at about the photo's own resolution (at least
    FLAT_MIN_PX_PER_MM, at most LEARN_PX_PER_MM), its longer side matched to the longer side of `page_size_mm`
    (width, height), and turned `turn_deg` clockwise from how the photo shows it (Tesseract's orientation detection
    called upright plano photos turned, even at its confidence 3: a person sees the overlay and says)."""
    corners = paper_corners(gray, outline)
    if isinstance(corners, NotLearned):
        return corners
    across = (np.linalg.norm(corners[1] - corners[0]) + np.linalg.norm(corners[2] - corners[3])) / 2
    down = (np.linalg.norm(corners[3] - corners[0]) + np.linalg.norm(corners[2] - corners[1])) / 2
    width_mm, height_mm = sorted(page_size_mm, reverse=bool(across > down))
    native = max(across / width_mm, down / height_mm)
    px_per_mm = round(float(min(LEARN_PX_PER_MM, max(FLAT_MIN_PX_PER_MM, native))), 4)
    size = (round(width_mm * px_per_mm), round(height_mm * px_per_mm))
    turns = turn_deg // 90 % 4
    # A clockwise quarter turn of the flattened page makes its old bottom-left corner the top-left one.
    corners, size = np.roll(corners, turns, axis=0), (size if turns % 2 == 0 else size[::-1])
    return FlatPage(flatten(gray, corners, size), px_per_mm, corners, size)

"""Align: a decoded photo -> which template page it is and where every box lies, with measured quality.

Composes the stages `locate` (markers, tag, homography), `identify` (tag id, or printed title),
or for a page without markers `reference` (feature matching against reference-image templates),
and `refine` (each box on its printed frame), measures the quality of the result and refuses it,
with a reason code and a message a person can act on, whenever it cannot be trusted. It never
returns a warp it has not checked against the printed page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import cv2
import numpy as np

from ocr.reader.decode import Photo
from ocr.reader.geometry import map_points, rectify, rectify_quad
from ocr.reader.identify import PageId, by_tag, by_title, read_title
from ocr.reader.levels import percentiles
from ocr.reader.locate import Located, find_tags, locate, reduce_for_locating, tag_corners_mm
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.reader.reference import MatchSettings, ReferenceMatch, match_reference
from ocr.reader.refine import BIG_SEARCH_MM, BoxFit, refine_boxes
from ocr.templates.model import FormTemplate, RectMM, rect_corners


@dataclass(frozen=True)
class AlignSettings:
    """Thresholds for refusing an alignment (chosen on synthetic harsh photos: bench/align_bench.py)."""

    min_sharpness: float = 0.30  # median darkness of the box frame lines at 4 px/mm (sharp print ~0.6-0.9)
    min_marker_sharpness: float = 0.10  # steepest marker edge per contrast at 4 px/mm (sharp print ~0.2-0.5)
    min_paper_level: int = 60  # brightest tenth of the page, 0-255
    max_residual_mm: float = 3.5  # tag corners against the marker homography (phone photos: 99th pct 2.3): bent
    min_boxes_seen: float = 0.5  # share of boxes whose printed lines were found where expected
    edge_margin_px: int = 2  # a box this close to the photo's edge counts as cut off
    reference_search_mm: float = 3.0  # a feature-matched homography is off by a fraction of a box: search less than
    # half the 8.7 mm pitch of the 2019 forms' boxes, so that a box is never taken for its neighbour
    match: MatchSettings = MatchSettings()


@dataclass(frozen=True)
class AlignmentQuality:
    markers_found: int  # corner markers used, of 4 (0: matched to a reference image)
    tag_read: bool
    residual_mm: float  # tag corners against the homography of the markers (0 without a tag); median feature
    # reprojection distance for a reference-image match
    page_fraction: float  # share of the photo covered by the page
    sharpness: float  # median darkness of the big boxes' printed frames at 4 px/mm, 0..1
    paper_level: int  # brightness of the paper, 0..255
    boxes_seen: float  # share of big boxes whose printed lines were found where expected
    inlier_ratio: float | None = None  # reference-image match: feature matches that agree with its homography


@dataclass(frozen=True)
class PageAlignment:
    """A page identified and aligned: boxes in photo px (x, y), from page mm through `page_homography`."""

    template: FormTemplate
    page_number: int
    identified_by: str
    page_homography: np.ndarray  # (3, 3): page mm -> photo px
    boxes: tuple[BoxFit, ...]
    quality: AlignmentQuality
    photo_size: tuple[int, int] = field(default=(0, 0))  # (width, height) px

    def box_corners(self, field_id: str) -> np.ndarray:
        """(n_boxes, 4, 2) photo px: TL, TR, BR, BL of each box of the field, refined."""
        return self._corners_by_field[field_id]

    def box_rects_mm(self, field_id: str) -> tuple[RectMM, ...]:
        """(x, y, w, h) page mm of each box of the field where the page shows it (the bend undone): the refined
        corners' bounding rectangle."""
        return self._rects_mm_by_field.get(field_id, ())

    @cached_property
    def _rects_mm_by_field(self) -> dict[str, tuple[RectMM, ...]]:
        """Every box's refined rectangle by field, made once (the tally asks row by row)."""
        out: dict[str, list[RectMM]] = {}
        for fit in self.boxes:
            c = np.array(fit.corners_mm)
            out.setdefault(fit.field_id, []).append(tuple(float(v) for v in (*c.min(axis=0), *(c.max(axis=0) - c.min(axis=0)))))
        return {field_id: tuple(rects) for field_id, rects in out.items()}

    @cached_property
    def _corners_by_field(self) -> dict[str, np.ndarray]:
        """Every box's corners in photo px, mapped in one call, by field (the cut asks field by field)."""
        corners = map_points(self.page_homography, np.array([f.corners_mm for f in self.boxes]))
        out: dict[str, list[np.ndarray]] = {}
        for fit, box in zip(self.boxes, corners):
            out.setdefault(fit.field_id, []).append(box)
        return {field_id: np.array(boxes) for field_id, boxes in out.items()}


def _geometries(templates: tuple[FormTemplate, ...]) -> list[FormTemplate]:
    """One template per distinct printed geometry (page size, markers, tag place): locating needs no more."""
    seen, out = set(), []
    for t in templates:
        key = (t.page_size_mm, t.markers, t.tag_rect_mm, t.tag_rotation_deg)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _page_quad(template: FormTemplate, h: np.ndarray) -> np.ndarray:
    return map_points(h, rect_corners((0.0, 0.0, *template.page_size_mm)))


def _no_page(photo: Photo, geometry: FormTemplate) -> Refusal:
    """Why no page was located: a visible tag means the page is there but cut off or its markers hidden."""
    small, scale = reduce_for_locating(photo.gray)
    tags = find_tags(small)
    if not tags:
        return Refusal(ReasonCode.NO_PAGE_FOUND, f"{photo.source}: no form page found (no corner markers, no page tag): "
                       "photograph the whole page, flat, with its four corner squares visible")
    h, _ = cv2.findHomography(tag_corners_mm(geometry), tags[0].corners_px / scale)
    quad = _page_quad(geometry, h) if h is not None else None
    width, height = photo.size
    if quad is not None and ((quad < 0).any() or (quad[:, 0] > width).any() or (quad[:, 1] > height).any()):
        return Refusal(ReasonCode.PAGE_CUT_OFF, f"{photo.source}: the page is cut off: part of it is outside the photo; "
                       "step back so that the whole page and its four corner squares are in the picture")
    return Refusal(ReasonCode.NO_PAGE_FOUND, f"{photo.source}: the page tag is visible but not enough corner markers: "
                   "make sure all four corner squares are visible and not covered")


def marker_sharpness(gray: np.ndarray, h: np.ndarray, template: FormTemplate) -> float:
    """Steepest edge of the corner markers, rectified at 4 px/mm, as a share of their contrast (sharp print ~0.3-0.5)."""
    r, side = 4.0, template.markers.square_mm * 2
    values = []
    for x, y in template.markers.blocks_mm:
        size = int((side + 6) * r)
        window = rectify(gray, h, (x - 3, y - 3), (size, size), r).astype(np.float32)
        contrast = float(np.percentile(window, 95) - np.percentile(window, 5))
        gradient = cv2.magnitude(cv2.Sobel(window, cv2.CV_32F, 1, 0), cv2.Sobel(window, cv2.CV_32F, 0, 1)) / 8
        values.append(float(np.percentile(gradient, 99)) / max(contrast, 1.0))
    return float(np.median(values))


def _half_turn(template: FormTemplate) -> np.ndarray:
    """Page mm -> page mm turn by 180 degrees that maps the corner markers onto each other."""
    cx, cy = np.mean(template.markers.centres_mm(), axis=0)
    return np.array([[-1.0, 0, 2 * cx], [0, -1.0, 2 * cy], [0, 0, 1]])


def _read_title_either_way(photo: Photo, located: Located, geometry: FormTemplate) -> tuple[Located, tuple | None]:
    """Without a tag the markers cannot tell up from down: the side whose title reads is up."""
    for h in (located.page_homography, located.page_homography @ _half_turn(geometry)):
        title = read_title(photo.gray, h, geometry)
        if title:
            return replace(located, page_homography=h), title
    return located, None


def _identify(photo: Photo, located: Located, title: tuple | None, templates: tuple[FormTemplate, ...],
              pool: tuple[FormTemplate, ...], template_id: str | None, page_number: int | None) -> PageId | Refusal:
    """The page's template and number: from its tag, else its title; checked against what the caller named."""
    if located.tag is not None:
        found = by_tag(located.tag.tag_id, templates)
        if found is None:
            return Refusal(ReasonCode.UNKNOWN_TEMPLATE, f"{photo.source}: page tag {located.tag.tag_id} belongs to no "
                           "known template: is this form supported? (`formc template list`)")
    else:
        candidates = by_title(*title, pool) if title else []
        if template_id is not None and page_number is not None:
            if title and template_id not in candidates:
                return Refusal(ReasonCode.WRONG_PAGE, f"{photo.source}: the title says {title[0]} page {title[1]}, "
                               f"not {template_id} page {page_number}")
            return PageId(template_id, page_number, "caller")
        if len(candidates) != 1:
            why = "its title is unreadable" if not title else f"its title fits {len(candidates)} templates"
            return Refusal(ReasonCode.UNKNOWN_TEMPLATE, f"{photo.source}: the page tag is unreadable and {why}: "
                           "retake the photo with the tag (top right) sharp, or name the template (--template)")
        found = PageId(candidates[0], title[1], "title")
    if template_id is not None and (found.template_id, found.page_number) != (template_id, page_number or found.page_number):
        return Refusal(ReasonCode.WRONG_PAGE, f"{photo.source}: this is {found.template_id} page {found.page_number}, "
                       f"not {template_id}" + (f" page {page_number}" if page_number else ""))
    return found


def align_page(photo: Photo, templates: tuple[FormTemplate, ...], template_id: str | None = None,
               page_number: int | None = None, settings: AlignSettings = AlignSettings()) -> PageAlignment | Refusal:
    """Find, identify and align the page in `photo`; a caller may name the template and page it must be."""
    pool = tuple(t for t in templates if template_id is None or t.id == template_id)
    if not pool:
        return Refusal(ReasonCode.UNKNOWN_TEMPLATE, f"unknown template {template_id!r}")
    printed = tuple(t for t in pool if not t.by_reference)
    located, geometry = None, None
    for geometry in _geometries(printed):
        located = locate(photo.gray, geometry)
        if located:
            break
    if not located:
        match = _match_reference(photo, pool, settings)
        if match:
            return _by_reference(photo, match, page_number, settings)
        if geometry is None:
            return Refusal(ReasonCode.NO_PAGE_FOUND, f"{photo.source}: no page of {', '.join(t.id for t in pool)} found: "
                           "photograph the whole page, flat and sharp")
        return _no_page(photo, geometry)
    title = None
    if located.tag is None:
        located, title = _read_title_either_way(photo, located, geometry)
    page_id = _identify(photo, located, title, templates, pool, template_id, page_number)
    if isinstance(page_id, Refusal):
        if page_id.code == ReasonCode.UNKNOWN_TEMPLATE and located.tag is None:
            # Dark corner squares of an older form can pass for markers: its reference scan may still know it.
            match = _match_reference(photo, pool, settings)
            if match:
                return _by_reference(photo, match, page_number, settings)
            sharpness = marker_sharpness(photo.gray, located.page_homography, geometry)
            if sharpness < settings.min_marker_sharpness:  # the tag was unreadable because all is blurred
                return Refusal(ReasonCode.TOO_BLURRY, f"{photo.source}: the page is too blurred to read (marker "
                               f"sharpness {sharpness:.2f}): hold the phone still, let it focus, and take it again")
        return page_id
    template = next(t for t in templates if t.id == page_id.template_id)
    return _placed(photo, template, page_id, located.page_homography, settings, BIG_SEARCH_MM,
                   markers_found=located.markers_found, tag_read=located.tag is not None,
                   residual_mm=located.residual_mm, inlier_ratio=None)


def _match_reference(photo: Photo, pool: tuple[FormTemplate, ...], settings: AlignSettings) -> ReferenceMatch | Refusal:
    """The page matched to a reference-image template of `pool` (a refusal when there is none, or no clear match)."""
    return match_reference(photo.gray, tuple(t for t in pool if t.by_reference), settings.match)


def _by_reference(photo: Photo, match: ReferenceMatch, page_number: int | None,
                  settings: AlignSettings) -> PageAlignment | Refusal:
    """A page matched to a reference-image template, placed and checked."""
    if page_number not in (None, match.page_number):
        return Refusal(ReasonCode.WRONG_PAGE, f"{photo.source}: this is {match.template.id} page {match.page_number}, "
                       f"not page {page_number}")
    return _placed(photo, match.template, PageId(match.template.id, match.page_number, "reference"),
                   match.page_homography, settings, settings.reference_search_mm, markers_found=0, tag_read=False,
                   residual_mm=match.residual_mm, inlier_ratio=match.inlier_ratio)


def _placed(photo: Photo, template: FormTemplate, page_id: PageId, h: np.ndarray, settings: AlignSettings,
            search_mm: float, markers_found: int, tag_read: bool, residual_mm: float,
            inlier_ratio: float | None) -> PageAlignment | Refusal:
    """The identified page's boxes refined on their printed lines, its quality measured, and refused if untrusted."""
    page = template.page(page_id.page_number)
    width, height = photo.size
    quad = _page_quad(template, h)
    frame = np.array([(0, 0), (width, 0), (width, height), (0, height)], np.float32)
    visible, _ = cv2.intersectConvexConvex(quad.astype(np.float32), frame)
    page_fraction = float(visible / (width * height))
    refinement = refine_boxes(photo.gray, h, template, page.number, search_mm)
    fits = refinement.boxes
    corners = map_points(h, np.array([f.corners_mm for f in fits]))
    margin = settings.edge_margin_px
    if (corners < margin).any() or (corners[..., 0] > width - margin).any() or (corners[..., 1] > height - margin).any():
        return Refusal(ReasonCode.PAGE_CUT_OFF, f"{photo.source}: part of the page's boxes are outside the photo; "
                       "step back so that the whole page is in the picture")
    sampled = photo.gray[::8, ::8]  # paper level from every 8th pixel inside the page
    inside = np.zeros(sampled.shape, np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad / 8).astype(np.int32), 1)
    paper_level = int(percentiles(sampled[inside > 0], 90)) if inside.any() else 0
    # Quality is judged on the numbers' main boxes, not the small row sums inside a tally's column.
    big = [f for f in fits if f.field_id in refinement.big_fields]
    darkness = np.array([f.frame_darkness for f in big])
    quality = AlignmentQuality(markers_found=markers_found, tag_read=tag_read,
                               residual_mm=round(residual_mm, 3), page_fraction=round(page_fraction, 4),
                               sharpness=round(float(np.median(darkness)), 3), paper_level=paper_level,
                               boxes_seen=round(float(np.mean([f.measured for f in big])), 3), inlier_ratio=inlier_ratio)
    if paper_level < settings.min_paper_level:
        return Refusal(ReasonCode.TOO_DARK, f"{photo.source}: the page is too dark to read (paper at {paper_level}/255): "
                       "take the photo in better light, without shadow on the page")
    if quality.sharpness < settings.min_sharpness:
        return Refusal(ReasonCode.TOO_BLURRY, f"{photo.source}: the boxes are too blurred to read "
                       f"(sharpness {quality.sharpness:.2f}, frames found {quality.boxes_seen:.0%}): hold the phone "
                       "still, let it focus on the page, and take the photo again")
    # A feature match fits the whole flat scan at once: a box whose thin lines the scan lost keeps the match's place
    # (its read is flagged box_not_placed), while a marker page's every box must be found (a bend moves them).
    placed = refinement.regions_at_limit == 0 if template.by_reference else refinement.trustworthy
    if residual_mm > settings.max_residual_mm or quality.boxes_seen < settings.min_boxes_seen or not placed:
        unplaced = sum(not f.measured for f in big)
        apart = (f", features {residual_mm:.1f} mm off the reference scan" if template.by_reference
                 else f", corner squares and tag {residual_mm:.1f} mm apart")
        return Refusal(ReasonCode.PAGE_NOT_FLAT, f"{photo.source}: the page is too bent or folded to place every box "
                       f"({unplaced} boxes not found on their printed lines{apart}): lay the page flat and "
                       "photograph it again")
    return PageAlignment(template=template, page_number=page_id.page_number, identified_by=page_id.by,
                         page_homography=h, boxes=tuple(fits), quality=quality, photo_size=(width, height))


def _central_squares(corners: np.ndarray) -> np.ndarray:
    """(n, 4, 2) corners of the squares, centred in boxes (n, 4, 2: TL, TR, BR, BL), whose side is each box's shorter
    side: a tall box (the 2019 forms' 9 x 15 mm) holds its digit in the middle, and squashing it into a square crop
    would not."""
    tl, tr, br, bl = (corners[:, k] for k in range(4))
    width = np.linalg.norm(tr - tl, axis=1) + np.linalg.norm(br - bl, axis=1)
    height = np.linalg.norm(bl - tl, axis=1) + np.linalg.norm(br - tr, axis=1)
    su, sv = np.minimum(1.0, height / width), np.minimum(1.0, width / height)  # share of each side the square keeps
    u = 0.5 + np.array([-1, 1, 1, -1])[None, :, None] * su[:, None, None] / 2
    v = 0.5 + np.array([-1, -1, 1, 1])[None, :, None] * sv[:, None, None] / 2
    return (1 - u) * (1 - v) * tl[:, None] + u * (1 - v) * tr[:, None] + u * v * br[:, None] + (1 - u) * v * bl[:, None]


def cut_boxes(gray: np.ndarray, alignment: PageAlignment, field_id: str, size_px: int = 48,
              margin: float = 0.15) -> np.ndarray:
    """(n_boxes, size_px, size_px) uint8 crops of a field's boxes from the photo's greyscale image, rectified, frame
    and `margin` (share) included; of a box that is not square, its central square. `alignment`: anything with
    `box_corners(field_id)` in photo px (a PageAlignment, or a record's PagePlacement)."""
    lo, hi = margin * size_px / (1 + 2 * margin), size_px - margin * size_px / (1 + 2 * margin)
    target = np.array([(lo, lo), (hi, lo), (hi, hi), (lo, hi)], np.float32)
    return np.array([rectify_quad(gray, square, target, (size_px, size_px))
                     for square in _central_squares(alignment.box_corners(field_id))])

"""Match: align a photo to the scan of a reference-image template page by feature matching.

Older forms (the C1 pages of 2014-2019) print no corner markers and no page tag. Their template
carries a scan of the page instead (`ReferenceImage`); the photo and every reference scan are
reduced to a working size, described by local features (ORB; bench/reference_bench.py measures
SIFT against it), matched with Lowe's ratio test, and the page is the reference whose matches agree
on one homography (USAC MAGSAC++) with the most inliers. Handwriting and the paper's watermark
differ between copies and are left out as outliers; the boxes are then refined on their printed
lines by `ocr.reader.refine`, as for marker pages.

Coordinates: reference px and photo px are (x, y); the result maps page mm -> photo px.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ocr.reader.decode import decode_photo
from ocr.reader.geometry import map_points, rectify_quad, scaled
from ocr.reader.line_check import ReferenceLines, line_agreement, reference_lines
from ocr.reader.markers import orientation_preserved
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.templates.model import FormTemplate, ReferenceImage

Detector = Literal["sift", "orb"]


@dataclass(frozen=True)
class MatchSettings:
    detector: Detector = "orb"  # bench/reference_bench.py: as many real scans aligned as SIFT, 2-3x faster
    work_long_side_px: int = 800  # both images are matched at this size: enough for the print, cheap to describe
    max_features: int = 3000
    ratio: float = 0.8  # Lowe's ratio test: a match must beat the second-nearest descriptor by this factor
    ransac_px: float = 3.0  # inlier distance at the working size
    # Another page of the same form shares its header, title and watermark: up to ~40 inliers, a fifth of the
    # matches; the real 2019 scans of the right page give 76-3000 inliers, 39-100 % of the matches.
    min_inliers: int = 60
    min_inlier_ratio: float = 0.3
    # Fewer inliers (other TPS's scans of a 2014 or 2015 form: 13-38) stand if the printed lines agree under the
    # match (line_check.py: right placements 0.61-0.96, another form's reference at most 0.40), on one page only.
    weak_min_inliers: int = 12
    min_line_agreement: float = 0.55
    min_margin: float = 1.5  # the best page's inliers over the runner-up's


@dataclass(frozen=True)
class ReferenceMatch:
    template: FormTemplate
    page_number: int
    page_homography: np.ndarray  # (3, 3): page mm -> photo px
    inliers: int
    inlier_ratio: float  # inliers over ratio-test matches
    residual_mm: float  # median distance of the inliers from where the homography puts them, in page mm


@dataclass(frozen=True)
class _Features:
    points: np.ndarray  # (n, 2) float32 at the working size
    descriptors: np.ndarray
    to_work: float  # working px per image px


_reference_cache: dict[tuple, _Features] = {}
_NO_MATCH = Refusal(ReasonCode.NO_PAGE_FOUND, "the page matches no reference scan of an older form closely enough: "
                    "photograph the whole page, flat and sharp, in even light")
_NO_TEMPLATE = Refusal(ReasonCode.NO_PAGE_FOUND, "no template of an older form (placed by its reference scan) to "
                       "match the page with: is this form supported? (`formc template list`)")


def reference_scan(reference: ReferenceImage) -> np.ndarray:
    """The reference page's scan in greyscale (x, y px as its boxes were measured), decoded once per process; for a
    photo of a sheet without markers, the photo flattened as the template says."""
    return _decode_scan(reference.path, reference.sha256, reference.flattened_corners_px, reference.flattened_size_px)


@lru_cache(maxsize=8)
def _decode_scan(path: Path, sha256: str, corners_px: tuple | None, size_px: tuple[int, int] | None) -> np.ndarray:
    """Cached by path and content: a scan saved again under its name (the template editor) is decoded again."""
    if corners_px is None:
        scan = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    else:
        photo = decode_photo(path.read_bytes(), path.name)  # the EXIF turn applied, as the corners were measured
        scan = flatten(photo.gray, np.array(corners_px), size_px) if photo else None
    if scan is None:  # checked by sha256 when the template was loaded: gone or changed since
        raise FileNotFoundError(f"reference scan {path} cannot be read")
    return scan


def flatten(gray: np.ndarray, corners_px: np.ndarray, size_px: tuple[int, int]) -> np.ndarray:
    """The quadrilateral `corners_px` (TL, TR, BR, BL, px) of `gray` as a `size_px` (w, h) rectangle."""
    w, h = size_px
    return rectify_quad(gray, np.asarray(corners_px, np.float64), np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64),
                        size_px)


def _describe(gray: np.ndarray, settings: MatchSettings) -> _Features:
    scale = min(1.0, settings.work_long_side_px / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    detector = (cv2.SIFT_create(settings.max_features) if settings.detector == "sift"
                else cv2.ORB_create(settings.max_features))
    keypoints, descriptors = detector.detectAndCompute(small, None)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    return _Features(points, descriptors if descriptors is not None else np.zeros((0, 128), np.float32), scale)


def _reference_features(template: FormTemplate, page_number: int, settings: MatchSettings) -> _Features:
    reference = template.page(page_number).reference
    key = (template.id, template.version, page_number, reference.sha256, settings.detector, settings.work_long_side_px,
           settings.max_features)
    if key not in _reference_cache:
        _reference_cache[key] = _describe(reference_scan(reference), settings)
    return _reference_cache[key]


@dataclass(frozen=True)
class _Fit:
    h: np.ndarray  # reference working px -> photo working px
    ref_points: np.ndarray  # (inliers, 2) reference working px
    photo_points: np.ndarray  # (inliers, 2) photo working px
    matches: int  # ratio-test matches the inliers were drawn from


def _fit(photo: _Features, ref: _Features, settings: MatchSettings) -> _Fit | None:
    if len(photo.points) < 4 or len(ref.points) < 4:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_L2 if settings.detector == "sift" else cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(photo.descriptors, ref.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < settings.ratio * p[1].distance]
    if len(good) < settings.weak_min_inliers:
        return None
    src = ref.points[[m.trainIdx for m in good]]
    dst = photo.points[[m.queryIdx for m in good]]
    h, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, settings.ransac_px)
    if h is None or not orientation_preserved(h):
        return None
    keep = mask.ravel().astype(bool)
    return _Fit(h, src[keep], dst[keep], len(good))


def match_reference(gray: np.ndarray, templates: tuple[FormTemplate, ...],
                    settings: MatchSettings = MatchSettings()) -> ReferenceMatch | Refusal:
    """The reference page the photo shows, and where; a refusal when no page is matched clearly enough
    (no_page_found), or two pages equally well (unknown_template). A match with fewer common features than a match
    alone needs stands when the printed lines agree under it, on one template page only (line_check.py)."""
    if not templates:
        return _NO_TEMPLATE
    photo = _describe(gray, settings)
    scored = []
    for template in templates:
        for page in template.pages:
            ref = _reference_features(template, page.number, settings)
            fit = _fit(photo, ref, settings)
            if fit is not None:
                scored.append((len(fit.ref_points), template, page.number, fit, ref))
    if not scored:
        return _NO_MATCH
    scored.sort(key=lambda s: -s[0])
    inliers, template, page_number, fit, ref = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else 0
    if inliers >= settings.min_inliers and inliers >= settings.min_inlier_ratio * fit.matches:
        if inliers < settings.min_margin * runner_up:
            return Refusal(ReasonCode.UNKNOWN_TEMPLATE, f"the page looks like {template.id} page {page_number} but "
                           f"almost as much like {scored[1][1].id} page {scored[1][2]}: name the template and page it "
                           "must be (--template, --page), or photograph the whole page, flat and sharp")
        return _match(template, page_number, fit, ref, photo)
    weak = [_match(t, n, f, r, photo) for k, t, n, f, r in scored if k >= settings.weak_min_inliers]
    agreeing = sorted(((line_agreement(gray, m.page_homography, _lines(m.template.page(m.page_number).reference)), m)
                       for m in weak),
                      key=lambda am: -am[0])
    agreeing = [(a, m) for a, m in agreeing if a >= settings.min_line_agreement]
    if not agreeing:
        return _NO_MATCH
    if len(agreeing) > 1:
        other = agreeing[1][1]
        return Refusal(ReasonCode.UNKNOWN_TEMPLATE, f"the page's lines fit {agreeing[0][1].template.id} page "
                       f"{agreeing[0][1].page_number} and {other.template.id} page {other.page_number} alike: name the "
                       "template and page it must be (--template, --page)")
    return agreeing[0][1]


def _match(template: FormTemplate, page_number: int, fit: _Fit, ref: _Features, photo: _Features) -> ReferenceMatch:
    """The match a fit makes: its homography from page mm to photo px, and how well its inliers fit it."""
    px_per_mm = template.page(page_number).reference.px_per_mm
    ref_work_per_mm = px_per_mm * ref.to_work
    page_homography = scaled(fit.h, out_scale=1 / photo.to_work, in_scale=ref_work_per_mm)
    back = map_points(np.linalg.inv(fit.h), fit.photo_points)
    residual_mm = float(np.median(np.linalg.norm(back - fit.ref_points, axis=1))) / ref_work_per_mm
    return ReferenceMatch(template=template, page_number=page_number, page_homography=page_homography / page_homography[2, 2],
                          inliers=len(fit.ref_points), inlier_ratio=round(len(fit.ref_points) / fit.matches, 3),
                          residual_mm=round(residual_mm, 3))


@lru_cache(maxsize=32)
def _lines(reference: ReferenceImage) -> ReferenceLines:
    """The reference scan's printed lines, found once per scan (by content: the image's sha256 is in the key)."""
    return reference_lines(reference_scan(reference), reference.px_per_mm)

"""Refine: correct each box's position on the printed lines around it, where the page is not flat.

The page homography (markers) is exact only for a flat page; a bent or folded sheet moves boxes
by millimetres. Around a box, the photo rectified through the homography and the blank page
rendered from the template show the same printed lines (box frames, tally grids, table rules),
shifted by the bend. Their column and row darkness profiles are correlated to find that shift:
every printed line takes part with its own weight, so a neighbour's frame or a thick table rule
cannot be taken for the box's own frame.

Pass 1 measures whole fields of big boxes and whole tally grids over a wide search, then each
tally row with its row sums around what they say (rows repeat, so that search stays under half a
row); a smooth displacement field (locally weighted linear fit) interpolates them; pass 2
measures each box in a narrow search around that field, and every box is checked on its four
printed edges. A box not confirmed keeps `measured` False: a big one makes the page refused, a
row sum's read is flagged.

Shifts are in page mm (x, y); windows are sampled at REFINE_PX_PER_MM.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.blank_page import (
    CONTEXT_MM,
    REFINE_PX_PER_MM,
    blank_darkness,
    checkable_edges,
    cut_window,
    edges_on_lines,
    expected_at,
    window_px,
)
from ocr.reader.geometry import map_points, rectify
from ocr.reader.levels import percentiles
from ocr.templates.model import FormTemplate, RectMM, TemplatePage, rect_corners

BIG_SEARCH_MM = 10.0  # the bend a flat-page homography may leave on a photo of a bent sheet
WIDE_SEARCH_MM = 7.0  # around the big boxes' field, for the repetitive tally rows
NARROW_SEARCH_MM = 2.5  # around the smooth field's prediction
MIN_MATCH = 0.5  # correlation of photo and blank-page profiles for a box's lines to count (its edges are checked too)
MIN_UNIT_MATCH = 0.3  # the same for a pass-1 region (tally rows, full of strokes, correlate less)
PRIOR_PRICE_PER_MM = 0.02  # pass 2: correlation a shift must gain per mm it moves away from the smooth field


@dataclass(frozen=True)
class BoxFit:
    field_id: str
    index: int
    shift_mm: tuple[float, float]  # (dx, dy) of the box's centre from the template's position
    corners_mm: tuple[tuple[float, float], ...]  # TL, TR, BR, BL where the homography sees them (bend undone)
    match: float  # correlation of the printed lines around the box with the blank page, at that shift
    frame_darkness: float  # darkness (0..1) of the box's frame lines: low on a blurred photo
    measured: bool  # placed on its own printed lines, all four edges checked; False: flag its read


def big_box_fields(page: TemplatePage) -> set[str]:
    """The page's numbers proper (the big boxes), not the small row sums of a tally's column."""
    row_sums = tuple(f"{g.field_id}_baris_" for g in page.tally_grids)
    return {f.id for f in page.fields if not (row_sums and f.id.startswith(row_sums))}


class _Photo:
    """The photo rectified once onto the page at REFINE_PX_PER_MM over `region_mm`, as darkness 0..1;
    windows are slices of it (whole pixels: a prior is used to the nearest 0.25 mm)."""

    def __init__(self, gray: np.ndarray, page_homography: np.ndarray, region_mm: RectMM):
        r = REFINE_PX_PER_MM
        self.x0, self.y0, x1, y1 = window_px(region_mm, 0.0)
        page = rectify(gray, page_homography, (self.x0 / r, self.y0 / r), (x1 - self.x0, y1 - self.y0), r)
        paper, ink = percentiles(page[::4, ::4], [90, 1])
        # Darkness depends on the grey level alone: one table of 256, looked up, instead of arithmetic per pixel.
        levels = np.arange(256, dtype=np.float32)
        self.dark = cv2.LUT(page, np.clip((np.float32(paper) - levels) / np.float32(max(paper - ink, 10.0)), 0, 1))

    def windows(self, origins_px: np.ndarray, width: int, height: int) -> list[np.ndarray]:
        """The `height` x `width` windows whose top-left corners are `origins_px` (k, 2: x, y page px at
        REFINE_PX_PER_MM); zeros outside the region."""
        return [cut_window(self.dark, (x - self.x0, y - self.y0, x - self.x0 + width, y - self.y0 + height))
                for x, y in origins_px]


def _correlate(observed: np.ndarray, expected: np.ndarray, norms: np.ndarray, search: int,
               price: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of k profiles: the shift s (px, sub-pixel) maximising the correlation of observed[i + s] with
    expected[i] (centred, with its norm: `centred`), its correlation, and the integer shift. observed (k, n + 2 search),
    expected (k, n), norms (k,)."""
    n = expected.shape[1]
    # Each expected profile sums to 0: the observed window's mean drops out of the numerator.
    numerator = np.einsum("ksn,kn->ks", np.lib.stride_tricks.sliding_window_view(observed, n, axis=1), expected)
    zero = np.zeros((len(observed), 1))
    sums = np.concatenate([zero, np.cumsum(observed, axis=1, dtype=np.float64)], axis=1)
    squares = np.concatenate([zero, np.cumsum(observed.astype(np.float64) ** 2, axis=1)], axis=1)
    window_sum = sums[:, n:] - sums[:, :-n]
    spread = np.sqrt(np.maximum(squares[:, n:] - squares[:, :-n] - window_sum ** 2 / n, 0.0))
    scores = numerator / (spread * norms[:, None] + 1e-6)
    shifts = np.arange(-search, search + 1)
    k = np.argmax(scores - price * np.abs(shifts) / REFINE_PX_PER_MM, axis=1)
    rows, last = np.arange(len(scores)), scores.shape[1] - 1
    a, b, c = scores[rows, np.maximum(k - 1, 0)], scores[rows, k], scores[rows, np.minimum(k + 1, last)]
    denom = a - 2 * b + c
    peak = (k > 0) & (k < last) & (denom < 0)  # a parabola through the best and its neighbours, where it has a top
    offset = np.zeros(len(k))
    offset[peak] = 0.5 * (a[peak] - c[peak]) / denom[peak]
    return shifts[k] + offset, b, shifts[k]


def _measure(photo: _Photo, blank: np.ndarray, rects_mm: list[RectMM], priors_mm: list[tuple[float, float]],
             search_mm: float | list[float], price: float = 0.0) -> list[tuple[tuple[float, float], float, float]]:
    """For each rectangle: the shift (mm) of what is printed in it, searched within `search_mm` (one for all, or one
    each) of its prior; the weaker of the two profile correlations; the darkness the photo shows where the blank page
    is darkest. Windows of one size and search are measured together, in a few array operations."""
    r = REFINE_PX_PER_MM
    searches = [search_mm] * len(rects_mm) if isinstance(search_mm, (int, float)) else search_mm
    expected = [expected_at(blank, rect) for rect in rects_mm]
    # Priors to whole pixels: the observed window is the expected one moved by the prior, grown by the search.
    prior_px = np.rint(np.array(priors_mm, np.float64).reshape(-1, 2) * r).astype(int)
    out: list = [None] * len(rects_mm)
    groups: dict[tuple[tuple[int, int], int], list[int]] = {}
    for i, (e, s) in enumerate(zip(expected, searches)):
        groups.setdefault((e.shape, int(round(s * r))), []).append(i)
    for ((n_rows, n_cols), search), members in groups.items():
        origin = np.array([expected[i].inner[:2] for i in members]) + prior_px[members] - search
        observed = np.stack(photo.windows(origin, n_cols + 2 * search, n_rows + 2 * search))  # (k, rows, cols)
        col_profiles = observed[:, search:search + n_rows].mean(axis=1)
        row_profiles = np.einsum("krc->kr", observed[:, :, search:search + n_cols]) / np.float32(n_cols)
        dx, match_x, kx = _correlate(col_profiles, np.stack([expected[i].cols[0] for i in members]),
                                     np.array([expected[i].cols[1] for i in members]), search, price)
        dy, match_y, ky = _correlate(row_profiles, np.stack([expected[i].rows[0] for i in members]),
                                     np.array([expected[i].rows[1] for i in members]), search, price)
        for j, i in enumerate(members):
            lines = expected[i].lines
            aligned = observed[j][search + ky[j]:search + ky[j] + n_rows, search + kx[j]:search + kx[j] + n_cols]
            prior = prior_px[i] / r
            out[i] = ((float(prior[0] + dx[j] / r), float(prior[1] + dy[j] / r)), float(min(match_x[j], match_y[j])),
                      cv2.mean(aligned, lines)[0])  # 0 where the blank page has no line
    return out


class SmoothField:
    """Displacement (mm) anywhere on the page from the shifts measured at a few places.

    A locally weighted linear fit (Gaussian weights, KERNEL_MM) follows a bend of any shape where
    measurements are dense, and stays unbiased at the edge of the measured area, where a plain
    weighted mean would drag a tilted field towards the middle. A measurement that disagrees with
    its neighbours by more than OUTLIER_MM is left out first.
    """

    KERNEL_MM = 60.0
    OUTLIER_MM = 2.0
    SLOPE_RIDGE = 0.05

    def __init__(self, points: np.ndarray, shifts: np.ndarray, weights: np.ndarray):
        self.points, self.shifts, self.weights = points, shifts, weights
        if len(points) >= 3:  # each point against the fit of all the others
            keep = np.linalg.norm(self._predict(points, leave_one_out=True) - shifts, axis=1) < self.OUTLIER_MM
            if keep.sum() >= max(2, len(points) // 2):
                self.points, self.shifts, self.weights = points[keep], shifts[keep], weights[keep]

    def _predict(self, at: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        """The field at `at` (queries, 2); `leave_one_out`: the queries are the points, each fitted without itself."""
        offsets = (self.points[None] - at[:, None, :]) / self.KERNEL_MM  # (queries, points, 2)
        w = self.weights[None] * np.exp(-(offsets ** 2).sum(axis=2) / 2) + 1e-9
        if leave_one_out:
            np.fill_diagonal(w, 1e-9)
        design = np.concatenate([np.ones(offsets.shape[:2] + (1,)), offsets], axis=2)  # 1, dx, dy
        # A ridge on the slopes: where few or lined-up points cannot pin a slope, it stays flat
        # instead of extrapolating wildly.
        ridge = np.einsum("q,ij->qij", w.sum(axis=1) * self.SLOPE_RIDGE, np.diag([1e-6, 1.0, 1.0]))
        normal = np.einsum("qp,qpi,qpj->qij", w, design, design) + ridge
        rhs = np.einsum("qp,qpi,pk->qik", w, design, self.shifts)
        value = np.linalg.solve(normal, rhs)[:, 0, :]  # the local fit's value at the query point
        return np.clip(value, self.shifts.min(axis=0) - 1.0, self.shifts.max(axis=0) + 1.0)

    def __call__(self, at: np.ndarray) -> np.ndarray:
        if not len(self.points):
            return np.zeros((len(at), 2))
        return self._predict(at)


def _union(rects) -> RectMM:
    x0, y0 = min(b[0] for b in rects), min(b[1] for b in rects)
    return x0, y0, max(b[0] + b[2] for b in rects) - x0, max(b[1] + b[3] for b in rects) - y0


def _stage_a_regions(template: FormTemplate, page_number: int) -> list[RectMM]:
    """Stage A of pass 1: regions no shift within BIG_SEARCH_MM makes look like themselves: each field of big
    boxes (23 mm apart) and each whole tally grid with its row sums (its header and thick frame break the rows'
    repetition)."""
    page = template.page(page_number)
    big = big_box_fields(page)
    regions = [_union(f.boxes_mm) for f in page.fields if f.id in big]
    for grid in page.tally_grids:
        row_sums = [b for f in page.fields if f.id.startswith(f"{grid.field_id}_baris_") for b in f.boxes_mm]
        regions.append(_union([grid.rect_mm] + row_sums))
    return regions


def _tally_rows(template: FormTemplate, page_number: int) -> list[tuple[RectMM, float]]:
    """Stage B of pass 1: each tally row with its row-sum boxes (they share long printed lines), and the row pitch."""
    page = template.page(page_number)
    fields = {f.id: f for f in page.fields}
    rows = []
    for grid in page.tally_grids:
        x, y, w, h = grid.rect_mm
        pitch = h / grid.rows
        for r in range(grid.rows):
            row_sum = fields.get(f"{grid.field_id}_baris_{r + 1}")
            rows.append((_union([(x, y + r * pitch, w, pitch)] + list(row_sum.boxes_mm if row_sum else ())), pitch))
    return rows


def _centre(rect: RectMM) -> tuple[float, float]:
    return rect[0] + rect[2] / 2, rect[1] + rect[3] / 2


@dataclass(frozen=True)
class Refinement:
    """The refined boxes of a page, and whether the bend stayed within what refinement can follow."""

    boxes: tuple[BoxFit, ...]
    big_fields: frozenset[str]  # see big_box_fields
    regions_at_limit: int  # pass-1 regions best matched at the edge of their search: bent further than searched

    @property
    def trustworthy(self) -> bool:
        """No region bent beyond its search, and every big box placed on its own printed lines.

        Row sums that were not placed keep `measured` False: their reads are flagged, not trusted.
        """
        return self.regions_at_limit == 0 and all(f.measured for f in self.boxes if f.field_id in self.big_fields)


def _pass_one(photo: _Photo, blank: np.ndarray, template: FormTemplate, page_number: int,
              search_mm: float) -> tuple[SmoothField, int]:
    """Pass 1: the bend measured on whole regions (stage A: fields of big boxes and tally grids, within `search_mm`;
    stage B: each tally row around what stage A says) as a smooth field, and how many regions were best matched
    at the edge of their search."""
    centres, shifts, weights = [], [], []
    at_limit = 0

    def keep(measured: list, rects: list[RectMM], priors: list[tuple[float, float]], searches: list[float],
             tally_rows: bool = False) -> None:
        """Each region kept where it matched, inside its search."""
        nonlocal at_limit
        for rect, prior, search, (shift, match, _) in zip(rects, priors, searches, measured):
            if match < MIN_UNIT_MATCH:
                continue
            if max(abs(shift[0] - prior[0]), abs(shift[1] - prior[1])) > search - 0.5:
                # A strike line along a tally row pulls its match along the row's printed lines: no sign of a bend.
                at_limit += not tally_rows
                continue
            centres.append(_centre(rect))
            shifts.append(shift)
            weights.append(match)

    stage_a = _stage_a_regions(template, page_number)
    no_prior = [(0.0, 0.0)] * len(stage_a)
    keep(_measure(photo, blank, stage_a, no_prior, search_mm), stage_a, no_prior, [search_mm] * len(stage_a))
    coarse = SmoothField(np.array(centres).reshape(-1, 2), np.array(shifts).reshape(-1, 2), np.array(weights))
    tally_rows = _tally_rows(template, page_number)
    if tally_rows:
        rows = [rect for rect, _ in tally_rows]
        # Rows repeat every pitch: search less than half of it around what the big boxes say.
        searches = [min(WIDE_SEARCH_MM, 0.45 * pitch) for _, pitch in tally_rows]
        priors = [(float(x), float(y)) for x, y in coarse(np.array([_centre(rect) for rect in rows]))]
        keep(_measure(photo, blank, rows, priors, searches), rows, priors, searches, tally_rows=True)
    smooth = SmoothField(np.array(centres).reshape(-1, 2), np.array(shifts).reshape(-1, 2), np.array(weights))
    return smooth, at_limit


def _pass_two_windows(page: TemplatePage, predicted: np.ndarray) -> tuple[list[RectMM], list[tuple[float, float]],
                                                                          list[int], list[float]]:
    """Pass 2's windows: each big box alone, each field of small boxes (row sums) as one; their priors (mm) from the
    smooth field (`predicted`: its shift at each box's centre); for each box, the index of its window and its
    frame's stroke (mm)."""
    big = big_box_fields(page)
    rects, rect_priors, of_box, strokes, first = [], [], [], [], 0
    for field in page.fields:
        n = len(field.boxes_mm)
        if field.id not in big:
            # Small boxes (row sums) hold little printed line for their ink: measured as one field.
            of_box += [len(rects)] * n
            rects.append(_union(field.boxes_mm))
            rect_priors.append(tuple(float(v) for v in predicted[first:first + n].mean(axis=0)))
        else:
            of_box += range(len(rects), len(rects) + n)
            rects += field.boxes_mm
            rect_priors += [(float(p[0]), float(p[1])) for p in predicted[first:first + n]]
        strokes += [field.stroke_mm] * n
        first += n
    return rects, rect_priors, of_box, strokes


def refine_boxes(gray: np.ndarray, page_homography: np.ndarray, template: FormTemplate, page_number: int,
                 search_mm: float = BIG_SEARCH_MM) -> Refinement:
    """Every box of the page with its shift from the template position (mm); `search_mm`: how far the homography
    may be off at a big box (a bent sheet's marker homography: BIG_SEARCH_MM; a feature match: less)."""
    blank = blank_darkness(template, page_number)
    page = template.page(page_number)
    printed = [b for f in page.fields for b in f.boxes_mm] + [g.rect_mm for g in page.tally_grids]
    x, y, w, h = _union(printed)
    reach = CONTEXT_MM + search_mm + 2  # every window pass 1 and 2 may ask for
    photo = _Photo(gray, page_homography, (x - reach, y - reach, w + 2 * reach, h + 2 * reach))
    smooth, at_limit = _pass_one(photo, blank, template, page_number, search_mm)
    corners = np.array([rect_corners(b) for f in page.fields for b in f.boxes_mm])  # (boxes, 4, 2)
    # Each corner follows the smooth field (a bent box also turns and stretches); the box's own
    # measurement moves all four by what it adds to the field at its centre.
    corner_field = smooth(corners.reshape(-1, 2)).reshape(corners.shape)
    rects, rect_priors, of_box, strokes = _pass_two_windows(page, smooth(corners.mean(axis=1)))
    measured = _measure(photo, blank, rects, rect_priors, NARROW_SEARCH_MM, PRIOR_PRICE_PER_MM)
    results, priors = [measured[i] for i in of_box], [rect_priors[i] for i in of_box]
    seen = np.array([match >= MIN_MATCH for _, match, _ in results])
    finals = np.array([shift if ok else prior for (shift, _, _), prior, ok in zip(results, priors, seen)])
    moved = corners + corner_field + (finals - np.array(priors))[:, None, :]
    edges = edges_on_lines(gray, page_homography, moved, np.array(strokes))
    checkable = checkable_edges(template, page_number)
    on_lines = (edges if checkable is None else edges | ~checkable).all(axis=1)
    ids = [(f.id, i) for f in page.fields for i in range(len(f.boxes_mm))]
    fits = tuple(BoxFit(field_id=fid, index=i, shift_mm=(float(final[0]), float(final[1])),
                        corners_mm=tuple(map(tuple, box_corners.round(4).tolist())), match=match,
                        frame_darkness=darkness, measured=bool(ok and on_line))
                 for (fid, i), final, box_corners, (_, match, darkness), ok, on_line
                 in zip(ids, finals, moved, results, seen, on_lines))
    return Refinement(boxes=fits, big_fields=frozenset(big_box_fields(page)), regions_at_limit=at_limit)


def box_corners_px(page_homography: np.ndarray, fit: BoxFit) -> np.ndarray:
    """(4, 2) photo px of a refined box's corners (TL, TR, BR, BL)."""
    return map_points(page_homography, fit.corners_mm)

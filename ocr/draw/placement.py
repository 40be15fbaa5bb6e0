"""Where a read page lies in its photo, taken from the record: what drawing needs, without reading again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocr.reader.geometry import map_points
from ocr.record import PageQuality, SubmissionResult
from ocr.templates.model import FormTemplate


@dataclass(frozen=True)
class PagePlacement:
    """A read page on its template page: the record's geometry in arrays (the same calls as an alignment's)."""

    template: FormTemplate
    page_number: int
    page_homography: np.ndarray  # (3, 3): page mm (x, y) -> photo px (x, y)
    corners_mm: dict[str, np.ndarray]  # field id -> (n_boxes, 4, 2) page mm, TL, TR, BR, BL, boxes left to right
    quality: PageQuality

    def box_corners(self, field_id: str) -> np.ndarray:
        """(n_boxes, 4, 2) photo px of the field's boxes, as placed by the reader."""
        return map_points(self.page_homography, self.corners_mm[field_id])


def placements(result: SubmissionResult, templates: tuple[FormTemplate, ...]) -> list[PagePlacement | None]:
    """Per photo of `result`, in order: its placement, or None for a page that was not read (or a record of schema 1,
    which carries no geometry)."""
    template = next((t for t in templates if t.id == result.template), None)
    out: list[PagePlacement | None] = []
    for page in result.pages:
        geometry = page.geometry
        if template is None or geometry is None or page.page is None or page.quality is None:
            out.append(None)
            continue
        corners: dict[str, list] = {}
        for box in geometry.boxes:
            corners.setdefault(box.field_id, []).append(box.corners_mm)
        out.append(PagePlacement(template, page.page, np.array(geometry.page_homography, np.float64),
                                 {f: np.array(c, np.float64) for f, c in corners.items()}, page.quality))
    return out

"""The images the review app shows for a submission, drawn once from its record, template and photos.

`page-<n>.jpg` (the preview of the n-th photo), `boxes-<field>.jpg` (a field's boxes enlarged),
`region-<field>.jpg` (the page around them, the boxes framed) and `boxes.npz` (the classifier's
48 px crops of every box, for retraining exports).
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from ocr.draw.placement import placements
from ocr.draw.preview import field_crop, render_submission_preview
from ocr.reader.align import cut_boxes
from ocr.record import SubmissionResult
from ocr.templates.model import FormTemplate

PREVIEW_PX_PER_MM = 2.5  # 1,500 px wide pages: sharp on a laptop, a few hundred kB as JPEG
BOXES_PX_PER_MM = 10.0
REGION_PX_PER_MM = 3.0
REGION_MARGIN_MM = 35.0
JPEG_QUALITY = 85


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def review_images(result: SubmissionResult, templates: tuple[FormTemplate, ...],
                  grays: list[np.ndarray | None]) -> dict[str, bytes]:
    """File name -> bytes of every image the app shows for `result` (`grays`: each photo's greyscale, or None)."""
    images = {f"page-{n}.jpg": _jpeg(image)
              for n, (_, image) in enumerate(render_submission_preview(result, templates, grays, PREVIEW_PX_PER_MM))}
    crops: dict[str, np.ndarray] = {}
    for placement, gray in zip(placements(result, templates), grays):
        if placement is None or gray is None:
            continue
        for f in placement.template.page(placement.page_number).fields:
            crops[f.id] = cut_boxes(gray, placement, f.id)
            images[f"boxes-{f.id}.jpg"] = _jpeg(field_crop(gray, placement, f.id, BOXES_PX_PER_MM, margin_mm=2.0))
            region = cv2.cvtColor(field_crop(gray, placement, f.id, REGION_PX_PER_MM, margin_mm=REGION_MARGIN_MM),
                                  cv2.COLOR_GRAY2BGR)
            # The field's place in its surroundings: a frame where the boxes crop sits.
            m = round(REGION_MARGIN_MM * REGION_PX_PER_MM)
            cv2.rectangle(region, (m - 4, m - 4), (region.shape[1] - m + 4, region.shape[0] - m + 4), (0, 120, 240), 3)
            images[f"region-{f.id}.jpg"] = _jpeg(region)
    if crops:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **crops)
        images["boxes.npz"] = buffer.getvalue()
    return images

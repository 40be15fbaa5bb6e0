"""The photo store: uploaded photos by content, and the images the app shows drawn once per submission.

Photos live at `<store>/<sha[:2]>/<sha>` (sha256 of the bytes, so the same photo is kept once);
what is drawn from a read lives in `<store>/derived/<photos_key>/`: `page-<n>.jpg` (the preview of
the n-th photo), `boxes-<field>.jpg` (a field's boxes enlarged), `region-<field>.jpg` (the page
around them) and `boxes.npz` (the classifier's 48 px crops of every box, for retraining exports).
Paths are built only from hex digests and template field ids, never from what a client sent.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ocr.reader.align import cut_boxes
from ocr.draw.preview import field_crop, render_submission_preview
from ocr.pipeline import SubmissionRead
from ocr.record import SubmissionResult

SHA = re.compile(r"[0-9a-f]{64}")
FIELD_ID = re.compile(r"[a-z0-9_]{1,100}")
PREVIEW_PX_PER_MM = 2.5  # 1,500 px wide pages: sharp on a laptop, a few hundred kB as JPEG
BOXES_PX_PER_MM = 10.0
REGION_PX_PER_MM = 3.0
REGION_MARGIN_MM = 35.0
JPEG_QUALITY = 85
# Magic numbers of the photo formats the decoder takes: the type is judged by content, never by name.
_MAGIC = [(0, b"\xff\xd8\xff", "image/jpeg"), (0, b"\x89PNG\r\n\x1a\n", "image/png"), (8, b"WEBP", "image/webp"),
          (4, b"ftypheic", "image/heic"), (4, b"ftypheix", "image/heic"), (4, b"ftypmif1", "image/heif"),
          (4, b"ftyphevc", "image/heic")]


def sniff(head: bytes) -> str | None:
    """The media type of a photo from its first bytes, or None when it is not a photo format we read."""
    for offset, magic, media_type in _MAGIC:
        if head[offset:offset + len(magic)] == magic and (media_type != "image/webp" or head[:4] == b"RIFF"):
            return media_type
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


class PhotoStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def photo_path(self, sha: str) -> Path:
        if not SHA.fullmatch(sha):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha[:2] / sha

    def put(self, data: bytes, sha: str | None = None) -> str:
        """Keeps the photo; its sha256 (`sha`: the caller hashed `data` already)."""
        sha = sha or hashlib.sha256(data).hexdigest()
        path = self.photo_path(sha)
        if not path.exists():
            _write_atomic(path, data)
        return sha

    def derived(self, photos_key: str, name: str) -> Path:
        """A drawn image of a submission: `page-<n>.jpg`, `boxes-<field>.jpg`, `region-<field>.jpg` or `boxes.npz`."""
        if not SHA.fullmatch(photos_key) or not re.fullmatch(r"(page-\d+|(boxes|region)-[a-z0-9_]{1,100})\.jpg|boxes\.npz",
                                                              name):
            raise ValueError(f"not a derived image: {name!r}")
        return self.root / "derived" / photos_key / name

    def draw(self, read: SubmissionRead, result: SubmissionResult) -> None:
        """Every image the app shows for this read (the `read_one(on_read=...)` hook; the read keeps its photos)."""
        for n, (_, image) in enumerate(render_submission_preview(read, result, PREVIEW_PX_PER_MM)):
            _write_atomic(self.derived(result.photos_key, f"page-{n}.jpg"), _jpeg(image))
        crops: dict[str, np.ndarray] = {}
        for page in read.pages:
            if page.alignment is None or page.photo is None:
                continue
            for f in page.alignment.template.page(page.page).fields:
                crops[f.id] = cut_boxes(page.photo, page.alignment, f.id)
                boxes = field_crop(page.photo.gray, page.alignment, f.id, BOXES_PX_PER_MM, margin_mm=2.0)
                _write_atomic(self.derived(result.photos_key, f"boxes-{f.id}.jpg"), _jpeg(boxes))
                region = cv2.cvtColor(field_crop(page.photo.gray, page.alignment, f.id, REGION_PX_PER_MM,
                                                 margin_mm=REGION_MARGIN_MM), cv2.COLOR_GRAY2BGR)
                # The field's place in its surroundings: a frame where the boxes crop sits.
                m = round(REGION_MARGIN_MM * REGION_PX_PER_MM)
                cv2.rectangle(region, (m - 4, m - 4), (region.shape[1] - m + 4, region.shape[0] - m + 4), (0, 120, 240), 3)
                _write_atomic(self.derived(result.photos_key, f"region-{f.id}.jpg"), _jpeg(region))
        if crops:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **crops)
            _write_atomic(self.derived(result.photos_key, "boxes.npz"), buffer.getvalue())

    def box_crops(self, photos_key: str) -> dict[str, np.ndarray]:
        """The classifier's crops of every box by field, as drawn at upload; empty when there are none."""
        path = self.derived(photos_key, "boxes.npz")
        if not path.exists():
            return {}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

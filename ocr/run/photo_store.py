"""The photo store: uploaded photos by content, and the images the app shows drawn once per submission.

Photos live at `<store>/<sha[:2]>/<sha>` (sha256 of the bytes, so the same photo is kept once);
what is drawn from a read lives in `<store>/derived/<photos_key>/`: `page-<n>.jpg` (the preview of
the n-th photo), `boxes-<field>.jpg` (a field's boxes enlarged), `region-<field>.jpg` (the page
around them) and `boxes.npz` (the classifier's 48 px crops of every box, for retraining exports).
Paths are built only from hex digests and template field ids, never from what a client sent. A read that drew
nothing (`formc batch --store`) has its images drawn when first asked for, from the photos in the store (`drawn`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

from ocr.draw.review_images import review_images
from ocr.reader.decode import Photo, decode_photo
from ocr.record import SubmissionResult
from ocr.templates.model import FormTemplate

SHA = re.compile(r"[0-9a-f]{64}")
FIELD_ID = re.compile(r"[a-z0-9_]{1,100}")
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


class PhotoStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._drawing: dict[str, threading.Lock] = {}  # photos_key -> held while its images are drawn on demand
        self._lock = threading.Lock()

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

    def draw(self, result: SubmissionResult, templates: tuple[FormTemplate, ...], grays: list[np.ndarray | None]) -> None:
        """Every image the app shows for this read (the `read_one(on_read=...)` hook)."""
        # page-0.jpg last: it says every image of the read is there (`drawn`).
        for name, data in sorted(review_images(result, templates, grays).items(), key=lambda i: i[0] == "page-0.jpg"):
            _write_atomic(self.derived(result.photos_key, name), data)

    def drawn(self, result: SubmissionResult, templates: tuple[FormTemplate, ...], name: str) -> Path:
        """The path of `result`'s image `name` (see `derived`). When its read drew nothing (a batch's), every image of
        it is drawn now from the photos in the store, once; it stays missing when a photo is not in the store."""
        path, done = self.derived(result.photos_key, name), self.derived(result.photos_key, "page-0.jpg")
        if done.exists():
            return path
        with self._lock:
            lock = self._drawing.setdefault(result.photos_key, threading.Lock())
        try:
            with lock:  # the review page asks for many images of one read at once: the first draws them all
                if not done.exists() and (grays := self._stored_grays(result)) is not None:
                    self.draw(result, templates, grays)
        finally:
            with self._lock:
                self._drawing.pop(result.photos_key, None)
        return path

    def _stored_grays(self, result: SubmissionResult) -> list[np.ndarray | None] | None:
        """Each page's photo from the store, decoded (None: a photo that could not be loaded or decoded when read);
        None when a photo of `result` is not in the store."""
        paths = [self.photo_path(p.sha256) if p.sha256 else None for p in result.pages]
        if any(path is not None and not path.exists() for path in paths):
            return None
        decoded = [decode_photo(path.read_bytes(), page.source, page.sha256) if path is not None else None
                   for page, path in zip(result.pages, paths)]
        return [photo.gray if isinstance(photo, Photo) else None for photo in decoded]

    def box_crops(self, photos_key: str) -> dict[str, np.ndarray]:
        """The classifier's crops of every box by field, as drawn at upload; empty when there are none."""
        path = self.derived(photos_key, "boxes.npz")
        if not path.exists():
            return {}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

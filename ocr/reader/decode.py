"""Decode: photo bytes -> one greyscale image as the photo is meant to be seen, or a refusal.

The header is read first (Pillow, no pixel decoding) so that empty, non-image, truncated, tiny
and decompression-bomb files are refused before any large allocation. JPEG, PNG and WebP are
then decoded once, in greyscale, by OpenCV (bench/decode_speed.py: the reduced-size JPEG decoders
save only 25-35 % and we cut boxes from full resolution anyway); HEIC and other formats go
through Pillow (HEIC via pillow-heif). EXIF orientation is applied to the pixels.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from ocr.reader.reasons import ReasonCode, Refusal

register_heif_opener()  # HEIC from iPhones opens through Pillow
# The formats of photos that Pillow opens here; no others (EPS would run Ghostscript, PSD and icons are no photos).
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF", "TIFF", "BMP", "GIF")

MAX_PIXELS = 64_000_000  # 8x a 12 MP phone photo; more is a decompression bomb, not a photo
MIN_SIDE_PX = 200  # a form's boxes cannot be read from less
_CV2_FORMATS = {"JPEG", "PNG", "WEBP"}
# EXIF orientation -> how to turn the stored pixels upright.
_ORIENT = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.transpose(a),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.flip(cv2.transpose(a), -1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


@dataclass(frozen=True)
class Photo:
    """A decoded photo: `gray` is (H, W) uint8, upright as displayed (EXIF orientation applied)."""

    source: str
    sha256: str
    format: str
    gray: np.ndarray
    exif_orientation: int
    bytes: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) px."""
        return self.gray.shape[1], self.gray.shape[0]


def _is_complete(data: bytes, fmt: str) -> bool:
    """Whether a JPEG/PNG/WebP file reaches its end marker (a cut-off upload does not)."""
    if fmt == "JPEG":
        return b"\xff\xd9" in data[-4096:]  # EOI; 0xFF is stuffed inside entropy-coded data
    if fmt == "PNG":
        return b"IEND" in data[-32:]
    if fmt == "WEBP":
        return len(data) >= 8 and struct.unpack("<I", data[4:8])[0] + 8 <= len(data)
    return True


def decode_photo(data: bytes, source: str = "<bytes>", sha256: str = "", max_pixels: int = MAX_PIXELS) -> Photo | Refusal:
    """Decode `data` or say why not; never raises for bad input. `sha256`: of `data`, when the caller hashed it."""
    if not data:
        return Refusal(ReasonCode.EMPTY_FILE, f"{source} is empty (0 bytes): upload the photo again")
    try:
        header = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)
        fmt, (width, height) = header.format or "?", header.size
    except Image.DecompressionBombError as exc:
        return Refusal(ReasonCode.IMAGE_TOO_LARGE, f"{source}: {exc} Refused before decoding; send the camera's original photo")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return Refusal(ReasonCode.NOT_AN_IMAGE, f"{source} is not an image we can read ({exc.__class__.__name__}); "
                       "send a JPEG, PNG, WebP or HEIC photo")
    try:
        orientation = int(header.getexif().get(0x0112, 1) or 1)
    except (OSError, ValueError, SyntaxError):  # metadata in a damaged tail: the truncation check says more
        orientation = 1
    if width * height > max_pixels:
        return Refusal(ReasonCode.IMAGE_TOO_LARGE, f"{source} claims {width}x{height} px, over {max_pixels / 1e6:.0f} MP: "
                       "refused before decoding; send the camera's original photo")
    if min(width, height) < MIN_SIDE_PX:
        return Refusal(ReasonCode.IMAGE_TOO_SMALL, f"{source} is only {width}x{height} px: the boxes cannot be read; "
                       "send a photo at full resolution")
    if not _is_complete(data, fmt):
        return Refusal(ReasonCode.TRUNCATED, f"{source} is cut off (the {fmt} file has no end): upload it again")
    gray = None
    if fmt in _CV2_FORMATS:
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
        if gray is not None and orientation in _ORIENT:
            gray = _ORIENT[orientation](gray)
    if gray is None:
        try:
            image = ImageOps.exif_transpose(Image.open(io.BytesIO(data), formats=PHOTO_FORMATS))
            gray = np.asarray(image.convert("L"))
        except (OSError, ValueError, SyntaxError) as exc:
            return Refusal(ReasonCode.TRUNCATED, f"{source} could not be decoded ({exc}): it is probably damaged; "
                           "upload it again")
    return Photo(source=source, sha256=sha256 or hashlib.sha256(data).hexdigest(), format=fmt, gray=np.ascontiguousarray(gray),
                 exif_orientation=orientation, bytes=len(data))

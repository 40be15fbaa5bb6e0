import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from ocr.reader.decode import decode_photo
from ocr.reader.reasons import ReasonCode


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@pytest.fixture(scope="module")
def page_like() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.full((900, 600), 235, np.uint8)
    for _ in range(40):
        x, y = rng.integers(0, 560), rng.integers(0, 860)
        cv2.rectangle(image, (int(x), int(y)), (int(x) + 30, int(y) + 30), 20, 3)
    return image


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_empty_file():
    assert decode_photo(b"", "a.jpg").code == ReasonCode.EMPTY_FILE


def test_text_file_named_jpg():
    refusal = decode_photo(b"this is not a photo\n" * 20, "notes.jpg")
    assert refusal.code == ReasonCode.NOT_AN_IMAGE
    assert "notes.jpg" in refusal.message


def test_truncated_jpeg(page_like):
    data = _jpeg(page_like)
    assert decode_photo(data[: len(data) // 2], "half.jpg").code == ReasonCode.TRUNCATED


def test_truncated_png(page_like):
    data = cv2.imencode(".png", page_like)[1].tobytes()
    assert decode_photo(data[: len(data) // 2], "half.png").code == ReasonCode.TRUNCATED


def test_one_pixel_image():
    data = cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()
    assert decode_photo(data, "dot.png").code == ReasonCode.IMAGE_TOO_SMALL


def test_png_claiming_30000_square_is_refused_before_decoding():
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 30001)) + \
        _png_chunk(b"IEND", b"")
    start = time.perf_counter()
    refusal = decode_photo(data, "bomb.png")
    assert refusal.code == ReasonCode.IMAGE_TOO_LARGE
    assert time.perf_counter() - start < 1.0  # nothing of 900 MP was decoded


def test_jpeg_png_webp_heic_decode_to_the_same_pixels(page_like):
    import pillow_heif

    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(page_like).convert("RGB")).save(heic, format="HEIF", quality=95)
    encoded = {"JPEG": _jpeg(page_like, 95), "PNG": cv2.imencode(".png", page_like)[1].tobytes(),
               "WEBP": cv2.imencode(".webp", page_like, [cv2.IMWRITE_WEBP_QUALITY, 95])[1].tobytes(),
               "HEIF": heic.getvalue()}
    for fmt, data in encoded.items():
        photo = decode_photo(data, f"page.{fmt.lower()}")
        assert photo.format == fmt
        assert photo.gray.shape == page_like.shape
        assert np.abs(photo.gray.astype(int) - page_like).mean() < 3, fmt
    assert len(decode_photo(encoded["PNG"]).sha256) == 64


@pytest.mark.parametrize("orientation, turn", [(3, cv2.ROTATE_180), (6, cv2.ROTATE_90_COUNTERCLOCKWISE),
                                               (8, cv2.ROTATE_90_CLOCKWISE)])
def test_exif_orientation_is_applied(page_like, orientation, turn):
    stored = cv2.rotate(page_like, turn)  # what a phone held sideways stores
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    photo = decode_photo(buffer.getvalue(), "sideways.jpg")
    assert photo.exif_orientation == orientation
    assert photo.gray.shape == page_like.shape
    assert np.abs(photo.gray.astype(int) - page_like).mean() < 3


@pytest.mark.parametrize("fmt", ["EPS", "ICO", "PCX"])
def test_formats_that_are_no_photos_are_refused_unopened(page_like, fmt):
    """Pillow opens them, but only photo formats are decoded (an EPS named .jpg would run Ghostscript)."""
    buf = io.BytesIO()
    Image.fromarray(page_like[:256, :256]).save(buf, fmt)
    assert Image.open(io.BytesIO(buf.getvalue())).format == fmt  # Pillow would have taken it
    refusal = decode_photo(buf.getvalue(), "page-1.jpg")
    assert refusal.code == ReasonCode.NOT_AN_IMAGE

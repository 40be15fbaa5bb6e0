"""The page's perceptual hash: the same sheet photographed again, or re-compressed, hashes alike; another sheet not.

Two sheets of one template share every printed line: only the handwriting tells them apart. So the hash is
taken over the page as aligned, box by box: each box crop the reader cut (rectified on its own printed lines,
the bend undone), its printed frame removed as the digit classifier removes it, laid out in template order as
one mosaic of ink; its pHash (imagehash: the signs of the 16 x 16 lowest DCT frequencies against their median)
is 256 bits. Light, blur, JPEG and the camera's angle move few of those bits; other digits or another hand
move about half. `bench/photo_hash.py` measures both and chose `SAME_SHEET_BITS`.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from ocr.reader.digits import CROP_PX

HASH_SIDE = 16  # DCT frequencies kept per axis: 256 bits, 64 hex digits
HASH_BITS = HASH_SIDE * HASH_SIDE
SAME_SHEET_BITS = 43  # most differing bits of one sheet's two photos: halfway between the farthest of one sheet's
# photos (34) and the nearest two sheets (52) in bench/photo_hash.py --seed 2100


def page_hash(ink: np.ndarray) -> str:
    """64 hex digits: the pHash of the handwriting in a page's box crops as `digits.cleaned` makes them of what
    `cut_boxes` cuts ((n, CROP_PX, CROP_PX) uint8 ink, every box of the page in template order)."""
    cols = int(np.ceil(np.sqrt(len(ink))))
    rows = -(-len(ink) // cols)
    cells = np.zeros((rows * cols, CROP_PX, CROP_PX), np.uint8)
    cells[:len(ink)] = ink
    mosaic = cells.reshape(rows, cols, CROP_PX, CROP_PX).transpose(0, 2, 1, 3).reshape(rows * CROP_PX, cols * CROP_PX)
    return str(imagehash.phash(Image.fromarray(mosaic), hash_size=HASH_SIDE))


def hash_words(hashes: list[str]) -> np.ndarray:
    """(n, HASH_BITS / 64) uint64: the hex hashes packed for counting differing bits (np.bitwise_count)."""
    return np.array([[int(h[k:k + 16], 16) for k in range(0, HASH_BITS // 4, 16)] for h in hashes],
                    np.uint64).reshape(len(hashes), HASH_BITS // 64)


def hash_distance(a: str, b: str) -> int:
    """Bits in which two page hashes differ, 0..HASH_BITS."""
    return int(np.bitwise_count(np.bitwise_xor(*hash_words([a, b]))).sum())

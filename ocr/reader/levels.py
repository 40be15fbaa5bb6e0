"""Grey levels of uint8 images: percentiles read off the 256-bin histogram, equal to np.percentile's (linear
interpolation) to the bit, in one counting pass instead of a partial sort of every pixel."""

from __future__ import annotations

import cv2
import numpy as np


def percentiles(gray: np.ndarray, q: float | list[float]) -> np.ndarray:
    """`np.percentile(gray, q)` of a non-empty uint8 array (any shape, strided views too), float64, q's shape."""
    counts = cv2.calcHist([np.ascontiguousarray(gray).reshape(-1, 1)], [0], None, [256], [0, 256]).ravel()
    cumulative = np.cumsum(counts.astype(np.int64))
    # numpy's own steps: the virtual index (n - 1) q, the order statistics either side, its lerp.
    index = np.true_divide(np.asarray(q, np.float64), 100) * (cumulative[-1] - 1)
    below = np.floor(index)
    a = np.searchsorted(cumulative, below, side="right").astype(np.float64)
    b = np.searchsorted(cumulative, np.minimum(below + 1, cumulative[-1] - 1), side="right").astype(np.float64)
    t = index - below
    return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)

"""Geometry shared by the reader's stages: rectifying a page window, mapping points through a homography.

Units and coordinate order, everywhere in the reader:
- page mm: (x, y) in millimetres from the page's top-left corner, x to the right, y down, as the
  template measures its boxes;
- photo px: (x, y) in pixels of the photo as displayed (after EXIF rotation), x to the right, y down;
- window px: (x, y) in pixels of a rectified window, sampled at `px_per_mm` from its top-left at
  `origin_mm`: window px (u, v) is page mm (origin_x + u / px_per_mm, origin_y + v / px_per_mm);
- a page homography is a (3, 3) float64 matrix that maps page mm -> photo px.
"""

from __future__ import annotations

import cv2
import numpy as np


def window_to_photo(page_homography: np.ndarray, origin_mm: tuple[float, float], px_per_mm: float) -> np.ndarray:
    """(3, 3): window px -> photo px for a window whose top-left is `origin_mm` (page mm), sampled at `px_per_mm`."""
    r = px_per_mm
    return page_homography @ np.array([[1 / r, 0, origin_mm[0]], [0, 1 / r, origin_mm[1]], [0, 0, 1]])


def warp_to_window(gray: np.ndarray, to_photo: np.ndarray, size_px: tuple[int, int],
                   border: int = cv2.BORDER_REPLICATE, border_value: float = 0) -> np.ndarray:
    """The window of `size_px` (width, height) whose px `to_photo` maps to photo px, sampled bilinearly from `gray`.

    The map goes window -> photo (OpenCV's WARP_INVERSE_MAP), so every window pixel gets a value: pixels
    whose place falls outside the photo take the `border` mode (OpenCV's), with `border_value` for a constant one.
    """
    return cv2.warpPerspective(gray, to_photo, size_px, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=border, borderValue=border_value)


def rectify(gray: np.ndarray, page_homography: np.ndarray, origin_mm: tuple[float, float], size_px: tuple[int, int],
            px_per_mm: float, border: int = cv2.BORDER_REPLICATE, border_value: float = 0) -> np.ndarray:
    """A page window rectified from the photo: (height, width) of `size_px` (width, height) px at `px_per_mm`,
    whose top-left is `origin_mm` (page mm, x y); `page_homography` maps page mm -> photo px. `border`,
    `border_value`: what a window pixel outside the photo shows (see `warp_to_window`)."""
    return warp_to_window(gray, window_to_photo(page_homography, origin_mm, px_per_mm), size_px, border, border_value)


def rectify_quad(gray: np.ndarray, corners_px: np.ndarray, target_px: np.ndarray, size_px: tuple[int, int],
                 border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The quadrilateral `corners_px` (4, 2 photo px, x y) warped onto `target_px` (4, 2 window px) of a window of
    `size_px` (width, height): a box cut straight from the photo, without its page coordinates."""
    to_window = cv2.getPerspectiveTransform(corners_px.astype(np.float32), target_px.astype(np.float32))
    # OpenCV inverts a forward map itself with LU: done here the same way, the window is the same to the bit.
    _, to_photo = cv2.invert(to_window, flags=cv2.DECOMP_LU)
    return warp_to_window(gray, to_photo, size_px, border)


def map_points(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`points` (..., 2) mapped through the homography `h` (e.g. page mm -> photo px), in float64, same shape."""
    points = np.asarray(points, np.float64)
    return cv2.perspectiveTransform(points.reshape(1, -1, 2), h).reshape(points.shape)


def scaled(h: np.ndarray, out_scale: float = 1.0, in_scale: float = 1.0) -> np.ndarray:
    """The homography `h` between two scaled copies: (x, y) -> `out_scale` * h(`in_scale` * (x, y)), e.g. a photo
    reduced by `out_scale`, or page mm (`in_scale` px per mm) from a homography of a scan's px."""
    out = np.diag([out_scale, out_scale, 1.0]) @ h
    return out if in_scale == 1.0 else out @ np.diag([in_scale, in_scale, 1.0])

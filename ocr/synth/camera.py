"""Simulate how a filled page reaches us: a phone photo (or a flat scan) with its geometry as truth.

The page (BGR, `scale` px/mm) is bent, placed in 3-D, projected through a pinhole camera onto a
frame with clutter, lit unevenly, blurred, noised and JPEG-encoded. `PhotoGeometry` records the
mapping so that any page point (mm) can be found in the photo (px, x right, y down, in the frame
as displayed, i.e. after EXIF orientation).

Bend model: the photo shows, at bent-page point p' (mm), the flat page point p = p' - d(p'),
with d = (ax sin(2 pi fx y/H + phx), ay sin(2 pi fy x/W + phy)); `page_to_photo` inverts it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ocr.templates.model import rect_corners


@dataclass(frozen=True)
class CameraProfile:
    """Ranges that one simulated capture draws from."""

    name: str
    megapixels: tuple[float, float]
    tilt_deg: float  # largest angle between the page and the image plane
    any_rotation: bool  # any in-plane angle (upside down included) vs. a slight skew
    fill: tuple[float, float]  # page area / frame area
    clutter: bool
    shadow: float  # strongest shadow darkening
    exposure: tuple[float, float]
    blur_sigma_px: tuple[float, float]
    noise_sigma: tuple[float, float]
    jpeg_quality: tuple[int, int]
    bend_mm: float  # largest paper-bend displacement
    folds: int  # most fold creases
    exif_rotated: float  # chance the pixels are stored sideways with an EXIF orientation tag
    finger: float  # chance a finger hides one corner marker
    sharpen: float  # strongest unsharp-mask amount of the phone's processing


PROFILES = {
    "scan": CameraProfile("scan", (8.0, 10.0), 0.0, False, (0.88, 0.97), False, 0.0, (0.95, 1.05), (0.3, 0.6),
                          (1.0, 2.0), (85, 95), 0.0, 0, 0.0, 0.0, 0.0),
    "phone": CameraProfile("phone", (8.0, 12.0), 25.0, True, (0.40, 0.95), True, 0.45, (0.7, 1.1), (0.3, 1.8),
                           (3.0, 8.0), (60, 95), 4.0, 2, 0.25, 0.0, 1.5),
    "harsh": CameraProfile("harsh", (5.0, 12.0), 35.0, True, (0.30, 0.95), True, 0.6, (0.4, 1.15), (0.5, 3.0),
                           (5.0, 12.0), (40, 85), 8.0, 3, 0.25, 0.3, 1.0),
}
_ASPECTS = (4 / 3, 16 / 9, 3 / 2)
_EXIF_ORIENTATION = {1: 6, 2: 3, 3: 8}  # np.rot90 turns of the stored pixels -> EXIF tag that undoes them


@dataclass(frozen=True)
class PhotoGeometry:
    """Where the page lies in the photo (frame as displayed, px)."""

    width: int
    height: int
    homography: tuple[tuple[float, ...], ...]  # bent page mm -> photo px
    bend: tuple[float, float, float, float, float, float]  # ax, fx, phx, ay, fy, phy (mm, cycles, rad)
    page_size_mm: tuple[float, float]
    exif_orientation: int  # 1 when the pixels are stored upright

    def bend_offset(self, points_mm: np.ndarray) -> np.ndarray:
        ax, fx, phx, ay, fy, phy = self.bend
        w, h = self.page_size_mm
        return np.stack([ax * np.sin(2 * np.pi * fx * points_mm[:, 1] / h + phx),
                         ay * np.sin(2 * np.pi * fy * points_mm[:, 0] / w + phy)], axis=1)

    def page_to_photo(self, points_mm: np.ndarray) -> np.ndarray:
        """(N, 2) flat-page points (x, y mm) -> (N, 2) photo points (x, y px)."""
        flat = np.asarray(points_mm, dtype=np.float64).reshape(-1, 2)
        bent = flat.copy()
        for _ in range(30):  # fixed point of p' = p + d(p'); d is smooth and small, so this converges fast
            bent = flat + self.bend_offset(bent)
        h = np.array(self.homography)
        return cv2.perspectiveTransform(bent.reshape(-1, 1, 2), h).reshape(-1, 2)

    def page_fraction(self) -> float:
        """Share of the frame's area covered by the page."""
        w, h = self.page_size_mm
        corners = self.page_to_photo(rect_corners((0.0, 0.0, w, h)))
        return float(cv2.contourArea(corners.astype(np.float32)) / (self.width * self.height))


def _frame_sides(profile: CameraProfile, rng: np.random.Generator) -> tuple[int, int]:
    """(long, short) side of the frame in px."""
    mp = rng.uniform(*profile.megapixels) * 1e6
    aspect = _ASPECTS[rng.integers(len(_ASPECTS))] if profile.clutter else 1.0 / 0.7
    long_side = int(np.sqrt(mp * aspect))
    return long_side, int(long_side / aspect)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    return cv2.Rodrigues((axis / np.linalg.norm(axis) * angle).astype(np.float64))[0]


def _place_page(profile: CameraProfile, size_mm: tuple[float, float], sides: tuple[int, int],
                rng: np.random.Generator) -> tuple[tuple[int, int], np.ndarray]:
    """Frame (width, height) and homography page mm -> frame px: 3-D pose through a pinhole, fitted into the frame.

    The phone is mostly held the way the page lies (landscape for a page seen sideways).
    """
    w_mm, h_mm = size_mm
    corners = rect_corners((0.0, 0.0, w_mm, h_mm))
    centred = np.hstack([corners - (w_mm / 2, h_mm / 2), np.zeros((4, 1))])
    for _ in range(50):  # poses where the page cannot fill the least share of the frame are drawn again
        if profile.any_rotation:
            base = rng.choice([0, 90, 180, 270]) if rng.random() < 0.6 else rng.uniform(0, 360)
            spin = np.deg2rad(base + rng.normal(0, 6))
        else:
            spin = np.deg2rad(rng.normal(0, 0.5))
        pose = _rotation(np.array([0, 0, 1.0]), spin)
        tilt = np.deg2rad(rng.uniform(0, profile.tilt_deg))
        if tilt > 0:
            axis_angle = rng.uniform(0, np.pi)
            pose = _rotation(np.array([np.cos(axis_angle), np.sin(axis_angle), 0.0]), tilt) @ pose
        distance = np.hypot(w_mm, h_mm) * rng.uniform(0.9, 1.6)
        points = centred @ pose.T
        projected = points[:, :2] / (distance + points[:, 2:3]) * distance
        span = projected.max(0) - projected.min(0)
        landscape = (span[0] > span[1]) == (rng.random() < 0.9)
        frame_w, frame_h = sides if landscape else sides[::-1]
        margin = 0.01 if profile.clutter else 0.015
        fit = min(frame_w * (1 - 2 * margin) / span[0], frame_h * (1 - 2 * margin) / span[1])
        area_at_fit = cv2.contourArea((projected * fit).astype(np.float32)) / (frame_w * frame_h)
        if area_at_fit >= profile.fill[0]:
            break
    target = rng.uniform(*profile.fill)
    scale = fit * min(1.0, np.sqrt(target / area_at_fit))
    placed = projected * scale
    low, high = placed.min(0), placed.max(0)
    room = np.array([frame_w, frame_h]) * (1 - margin) - (high - low) - np.array([frame_w, frame_h]) * margin
    offset = np.array([frame_w, frame_h]) * margin - low + rng.uniform(0, 1, 2) * np.maximum(room, 0)
    homography = cv2.getPerspectiveTransform(corners.astype(np.float32), (placed + offset).astype(np.float32))
    return (frame_w, frame_h), homography


def _background(frame: tuple[int, int], profile: CameraProfile, rng: np.random.Generator) -> np.ndarray:
    """A table with clutter (other papers, objects), drawn small and scaled up."""
    w, h = frame
    sw, sh = max(8, w // 8), max(8, h // 8)
    if not profile.clutter:
        return np.full((h, w, 3), int(rng.integers(225, 250)), np.uint8)
    base = rng.integers(30, 200, 3)
    small = np.empty((sh, sw, 3), np.uint8)
    small[:] = base
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(int(c) for c in (rng.integers(200, 255, 3) if rng.random() < 0.4 else rng.integers(0, 255, 3)))
        cx, cy = int(rng.integers(0, sw)), int(rng.integers(0, sh))
        if rng.random() < 0.5:
            size = (int(rng.integers(sw // 10, sw // 2)), int(rng.integers(sh // 10, sh // 2)))
            box = cv2.boxPoints(((cx, cy), size, float(rng.uniform(0, 180)))).astype(np.int32)
            cv2.fillPoly(small, [box], colour, cv2.LINE_AA)
        else:
            cv2.ellipse(small, (cx, cy), (int(rng.integers(2, sw // 5)), int(rng.integers(2, sh // 5))),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _lighting(frame: tuple[int, int], geometry_h: np.ndarray, size_mm: tuple[float, float], profile: CameraProfile,
              rng: np.random.Generator) -> np.ndarray:
    """Per-pixel gain (3 channels, uint8, 128 = 1.0): exposure, gradient, vignette, shadows, folds, colour cast."""
    w, h = frame
    sw, sh = max(8, w // 16), max(8, h // 16)
    ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xs, ys = xs / sw - 0.5, ys / sh - 0.5
    gain = rng.uniform(*profile.exposure) * (1 + rng.uniform(-0.25, 0.25) * xs + rng.uniform(-0.25, 0.25) * ys)
    gain *= 1 - rng.uniform(0, 0.3) * (xs ** 2 + ys ** 2)
    if profile.shadow > 0 and rng.random() < 0.6:
        shadow = np.zeros((sh, sw), np.float32)
        points = rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * (sw, sh)
        cv2.fillPoly(shadow, [cv2.convexHull(points.astype(np.int32))], 1.0)
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, sw / 40))
        gain *= 1 - rng.uniform(0.15, profile.shadow) * shadow
    page_mask = np.zeros((sh, sw), np.float32)
    page_corners = np.array([(0, 0), (size_mm[0], 0), (size_mm[0], size_mm[1]), (0, size_mm[1])], np.float64)
    outline = cv2.perspectiveTransform(page_corners[None], geometry_h)[0] / 16
    cv2.fillPoly(page_mask, [np.round(outline).astype(np.int32)], 1.0)
    for _ in range(int(rng.integers(0, profile.folds + 1))):
        # A crease: a dark line across the page and a slightly brighter side.
        a = rng.uniform(0, 1, 2) * size_mm
        b = rng.uniform(0, 1, 2) * size_mm
        line = cv2.perspectiveTransform(np.array([[a, b]], np.float64), geometry_h)[0] / 16
        normal = np.array([line[0][1] - line[1][1], line[1][0] - line[0][0]])
        normal /= np.linalg.norm(normal) + 1e-9
        dist = (xs + 0.5) * sw * normal[0] + (ys + 0.5) * sh * normal[1] - line[0] @ normal
        gain *= 1 - rng.uniform(0.05, 0.2) * np.exp(-(dist / 0.8) ** 2) * page_mask
        gain *= 1 + rng.uniform(0, 0.06) * (dist > 0) * page_mask
    cast = rng.uniform(0.85, 1.0, 3) if profile.clutter else np.ones(3)
    gain3 = np.clip(gain[..., None] * cast * 128, 0, 255).astype(np.uint8)
    return cv2.resize(gain3, (w, h), interpolation=cv2.INTER_LINEAR)


def _noise_tile(sigma: float, rng: np.random.Generator) -> np.ndarray:
    tile = rng.normal(128, sigma, (256, 256, 3))
    return np.clip(tile, 0, 255).astype(np.uint8)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment carrying only the orientation tag after the JPEG's SOI marker."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def bend_page(page: np.ndarray, scale: float, bend: tuple[float, ...], size_mm: tuple[float, float]) -> np.ndarray:
    """The page as seen bent: pixel p' shows the flat page at p' - d(p') (see module docstring)."""
    ax, fx, phx, ay, fy, phy = bend
    h_px, w_px = page.shape[:2]
    y_mm = np.arange(h_px, dtype=np.float32) / scale
    x_mm = np.arange(w_px, dtype=np.float32) / scale
    dx = (ax * np.sin(2 * np.pi * fx * y_mm / size_mm[1] + phx)) * scale
    dy = (ay * np.sin(2 * np.pi * fy * x_mm / size_mm[0] + phy)) * scale
    map_x = np.arange(w_px, dtype=np.float32)[None, :] - dx[:, None]
    map_y = np.arange(h_px, dtype=np.float32)[:, None] - dy[None, :]
    return cv2.remap(page, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class PhotoPlan:
    """Decided before the page is drawn, so the page can be drawn at the photo's own resolution."""

    frame: tuple[int, int]  # (width, height) px as displayed
    homography: np.ndarray  # page mm -> photo px
    bend: tuple[float, float, float, float, float, float]

    def px_per_mm(self, size_mm: tuple[float, float]) -> float:
        """Photo px per page mm at the page's centre."""
        centre = np.array([[size_mm[0] / 2, size_mm[1] / 2]])
        a, b, c = (cv2.perspectiveTransform(np.array([p], np.float64), self.homography)[0, 0]
                   for p in (centre, centre + (1, 0), centre + (0, 1)))
        (ux, uy), (vx, vy) = b - a, c - a
        return float(np.sqrt(abs(ux * vy - uy * vx)))


def plan_photo(profile: CameraProfile, size_mm: tuple[float, float], rng: np.random.Generator) -> PhotoPlan:
    frame, homography = _place_page(profile, size_mm, _frame_sides(profile, rng), rng)
    amp = profile.bend_mm
    bend = (float(rng.uniform(-amp, amp)), float(rng.uniform(0.3, 1.0)), float(rng.uniform(0, 2 * np.pi)),
            float(rng.uniform(-amp, amp)), float(rng.uniform(0.3, 1.0)), float(rng.uniform(0, 2 * np.pi)))
    return PhotoPlan(frame=frame, homography=homography, bend=bend)


def photograph(page: np.ndarray, scale: float, size_mm: tuple[float, float], plan: PhotoPlan, profile: CameraProfile,
               rng: np.random.Generator) -> tuple[bytes, PhotoGeometry]:
    """JPEG bytes of a simulated capture of `page` (BGR uint8 at `scale` px/mm) and its geometry."""
    frame, h_mm_to_px, bend = plan.frame, plan.homography, plan.bend
    if profile.bend_mm > 0:
        page = bend_page(page, scale, bend, size_mm)
    to_px = h_mm_to_px @ np.diag([1 / scale, 1 / scale, 1.0])
    photo = _background(frame, profile, rng)
    cv2.warpPerspective(page, to_px, frame, dst=photo, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    geometry = PhotoGeometry(width=frame[0], height=frame[1], homography=tuple(map(tuple, h_mm_to_px.tolist())),
                             bend=bend, page_size_mm=size_mm, exif_orientation=1)
    if rng.random() < profile.finger:
        corner = geometry.page_to_photo(np.array([(size_mm[0] * rng.integers(0, 2), size_mm[1] * rng.integers(0, 2))],
                                                 float))[0]
        radius = int(0.06 * min(frame))
        cv2.ellipse(photo, (int(corner[0]), int(corner[1])), (radius, int(radius * 1.8)), float(rng.uniform(0, 180)),
                    0, 360, (120, 150, 200), -1)
    photo = cv2.multiply(photo, _lighting(frame, h_mm_to_px, size_mm, profile, rng), scale=1 / 128)
    sigma = rng.uniform(*profile.blur_sigma_px)
    # Sensor noise before the lens blur is gone; the phone then sharpens (unsharp mask), which
    # lifts noise and edges again: that is what makes real phone JPEGs 3-5 MB at 12 MP.
    tile = _noise_tile(rng.uniform(*profile.noise_sigma), rng)
    reps = (-(-frame[1] // 256), -(-frame[0] // 256), 1)
    photo = cv2.addWeighted(photo, 1.0, np.tile(tile, reps)[: frame[1], : frame[0]], 1.0, -128)
    photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    if profile.sharpen > 0:
        amount = rng.uniform(0, profile.sharpen)
        photo = cv2.addWeighted(photo, 1 + amount, cv2.GaussianBlur(photo, (0, 0), 2.0), -amount, 0)
    photo = cv2.addWeighted(photo, 1.0, np.tile(tile[::-1], reps)[: frame[1], : frame[0]], 0.5, -64)
    turns = int(rng.integers(1, 4)) if rng.random() < profile.exif_rotated else 0
    stored = np.ascontiguousarray(np.rot90(photo, turns)) if turns else photo
    ok, encoded = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*profile.jpeg_quality))])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    jpeg = encoded.tobytes()
    if turns:
        jpeg = _with_exif_orientation(jpeg, _EXIF_ORIENTATION[turns])
        geometry = PhotoGeometry(**{**geometry.__dict__, "exif_orientation": _EXIF_ORIENTATION[turns]})
    return jpeg, geometry


def forwarded(jpeg: bytes, scale: float = 0.5, quality: int = 50) -> bytes:
    """The photo as a messaging app passes it on: scaled by `scale` and JPEG-compressed again at `quality`."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()

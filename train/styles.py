"""New writers from old ones: a glyph bank that draws from several writer sets and restyles every glyph.

`StyledBank` is a `GlyphBank` (ocr/synth/handwriting.py), so the synthetic form writer (ocr/synth/ink.py) uses
it unchanged: `sample(label, rng)` picks a source set by weight (so MNIST's 60,000 digits do not
drown CVL's 67 writers), a glyph of that set, and, with `augment`, restyles it:

- slant (shear) and width (aspect), elastic distortion (a smooth random displacement field),
- stroke width (thinner or heavier than the source pen) and pressure (ink that fades along the stroke),
- with `procedural` > 0, some digits are drawn from stroke models of allographs the data sets have
  few of: the open 4, the looped 2, the flagged 1 with and without foot, the crossed 7, the
  straight-stemmed 9, the flat-topped 3 (ocr/synth/ink.py flags 1s and crosses 7s per writer on top).

Size and position in the box and strokes crossing the frame are the writer style's (`size`, `sloppy`),
which train/make_crops.py widens per TPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ocr.synth.handwriting import GlyphBank

WORK_PX = 48  # glyphs are restyled at this height


@dataclass
class StyledBank(GlyphBank):
    """Glyphs by source set; `weights` by source name; restyled when `augment`."""

    sets: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    augment: bool = False
    procedural: float = 0.0  # share of digits drawn from the stroke models

    def add_set(self, name: str, images, labels, weight: float = 1.0) -> None:
        bank = GlyphBank()
        for label in sorted(set(labels.tolist())):
            bank.add(label, [images[i] for i in np.nonzero(labels == label)[0]])
        self.sets[name] = bank.glyphs
        self.weights[name] = weight
        for label, items in bank.glyphs.items():  # the plain view GlyphBank's own methods see
            self.glyphs.setdefault(label, []).extend(items)
        self.source = ", ".join(f"{n} x{w:g}" for n, w in self.weights.items())

    def sample(self, label: str, rng: np.random.Generator) -> np.ndarray | None:
        names = [n for n in self.sets if self.sets[n].get(label)]
        if not names:
            return None
        if label.isdigit() and self.procedural and rng.random() < self.procedural:
            glyph = stroke_digit(label, rng)
        else:
            w = np.array([self.weights[n] for n in names], float)
            options = self.sets[names[rng.choice(len(names), p=w / w.sum())]][label]
            glyph = options[rng.integers(len(options))]
        return restyle(glyph, rng) if self.augment else glyph


def _crop(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 40)
    if len(xs) < 8:
        return mask
    return np.ascontiguousarray(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])


def _smooth_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    f = cv2.GaussianBlur(rng.uniform(-1, 1, shape).astype(np.float32), (0, 0), sigma)
    return f / max(float(np.abs(f).max()), 1e-6)


def restyle(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One new writer's version of `glyph` (uint8 ink mask, cropped to the ink)."""
    h, w = glyph.shape
    f = WORK_PX / h
    g = cv2.resize(glyph, (max(2, round(w * f)), WORK_PX), interpolation=cv2.INTER_LINEAR)
    pad = WORK_PX // 3
    g = cv2.copyMakeBorder(g, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    gh, gw = g.shape
    # Slant and width: x' = sx * (x + shear * (y - centre)).
    shear = float(np.clip(rng.normal(0, 0.2), -0.5, 0.5))
    sx = float(rng.uniform(0.75, 1.25))
    m = np.array([[sx, sx * shear, gw / 2 - sx * (gw / 2 + shear * gh / 2)], [0, 1, 0]], np.float32)
    g = cv2.warpAffine(g, m, (gw, gh), flags=cv2.INTER_LINEAR)
    # Elastic: a smooth displacement field of a few px.
    if rng.random() < 0.8:
        sigma, alpha = rng.uniform(5, 9), rng.uniform(1.0, 4.0)
        dx, dy = _smooth_field((gh, gw), sigma, rng) * alpha, _smooth_field((gh, gw), sigma, rng) * alpha
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        g = cv2.remap(g, xx + dx, yy + dy, cv2.INTER_LINEAR)
    # Pen: thinner or heavier strokes than the source's.
    r = rng.random()
    if r < 0.2:
        g = cv2.erode(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    elif r < 0.45:
        k = int(rng.integers(3, 6))
        g = cv2.dilate(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    # Pressure: ink fading along the stroke (ballpoint running dry, a light hand).
    if rng.random() < 0.35:
        fade = 1 - rng.uniform(0.2, 0.55) * (0.5 + 0.5 * _smooth_field((gh, gw), rng.uniform(6, 14), rng))
        g = (g * fade).astype(np.uint8)
    return _crop(g)


# Stroke models in a unit box (x right, y down); each allograph a list of strokes of control points.
_ALLOGRAPHS: dict[str, list[list[list[tuple[float, float]]]]] = {
    "0": [[[(.5, 0), (.15, .15), (.05, .5), (.2, .9), (.5, 1), (.8, .85), (.95, .5), (.85, .15), (.5, 0), (.4, .05)]]],
    "1": [[[(.5, 0), (.5, 1)]],
          [[(.15, .35), (.6, 0), (.6, 1)]],
          [[(.1, .45), (.6, 0), (.6, 1)], [(.3, 1), (.9, 1)]]],
    "2": [[[(.1, .25), (.4, 0), (.8, .1), (.8, .4), (.1, 1), (.95, 1)]],
          [[(.1, .25), (.45, 0), (.85, .15), (.75, .45), (.2, .95), (.1, .85), (.3, .75), (.45, .95), (.95, 1)]]],
    "3": [[[(.1, .1), (.5, 0), (.85, .2), (.45, .48), (.9, .7), (.6, 1), (.1, .9)]],
          [[(.1, 0), (.9, 0), (.4, .42), (.85, .6), (.75, .95), (.35, 1), (.05, .85)]]],
    "4": [[[(.6, 0), (.05, .65), (.95, .65)], [(.7, .3), (.7, 1)]],
          [[(.15, 0), (.1, .6), (.9, .6)], [(.75, 0), (.75, 1)]],
          [[(.2, 0), (.15, .55), (.65, .6), (.95, .45)], [(.7, .05), (.7, 1)]]],
    "5": [[[(.9, 0), (.2, 0), (.15, .45), (.6, .35), (.9, .65), (.7, .95), (.1, .9)]],
          [[(.2, 0), (.15, .45), (.6, .35), (.9, .65), (.7, .95), (.1, .9)], [(.2, 0), (.9, .02)]]],
    "6": [[[(.75, 0), (.3, .25), (.1, .7), (.35, 1), (.8, .85), (.75, .55), (.35, .5), (.15, .7)]]],
    "7": [[[(.05, 0), (.95, 0), (.4, 1)]],
          [[(.05, .1), (.1, 0), (.95, 0), (.4, 1)], [(.35, .5), (.85, .5)]],
          [[(.05, 0), (.95, 0), (.6, .5), (.5, 1)]]],
    "8": [[[(.5, .45), (.15, .25), (.5, 0), (.85, .2), (.5, .45), (.1, .75), (.5, 1), (.9, .75), (.5, .45)]]],
    "9": [[[(.85, .2), (.5, 0), (.15, .2), (.35, .45), (.8, .35), (.85, .15), (.8, 1)]],
          [[(.85, .25), (.5, 0), (.15, .2), (.3, .45), (.75, .4), (.85, .2), (.7, .7), (.4, 1)]]],
}


def _chaikin(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    for _ in range(rounds):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.concatenate([points[:1], np.stack([q, r], 1).reshape(-1, 2), points[-1:]])
    return points


def stroke_digit(label: str, rng: np.random.Generator, size: int = WORK_PX) -> np.ndarray:
    """A digit drawn from a jittered stroke model (an allograph picked at random), as an ink mask."""
    options = _ALLOGRAPHS[label]
    strokes = options[rng.integers(len(options))]
    aspect = rng.uniform(0.45, 0.75) if label != "1" else rng.uniform(0.25, 0.6)
    canvas = np.zeros((size + 16, round(size * 0.8) + 16), np.uint8)
    thickness = int(rng.integers(3, 7))
    for stroke in strokes:
        p = np.array(stroke, np.float32) + rng.normal(0, 0.045, (len(stroke), 2)).astype(np.float32)
        p = _chaikin(p) if len(p) > 2 else p
        pts = np.stack([8 + p[:, 0] * size * aspect, 8 + p[:, 1] * size], 1)
        cv2.polylines(canvas, [np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)], False, 255, thickness,
                      cv2.LINE_AA, shift=4)
    return _crop(canvas)

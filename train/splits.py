"""Writer-disjoint splits of the handwriting in ../shared/data, written once for training and benchmarks.

Every digit the classifier learns from and every digit it is measured on comes through `glyphs()`
here, so no benchmark can draw a writer that training saw (within what the archives record; see the
MNIST/FEMNIST note below).

    TRAIN (the only handwriting training draws)     HELD OUT (never trained on)
    mnist        x_train (60,000, ~250 writers)     mnist-test    x_test: in-distribution reference only
    cvl          x_train (67 writers)               cvl-calib     x_valid, half of its 60 writers
                                                    cvl-test      x_valid, the other half
    femnist      writers not held out               femnist-calib held-out writers, half
                                                    femnist-test  held-out writers, the other half
    optdigits    x_train (30 writers)               optdigits-test x_test (13 other writers)
    comnist-x    the X's (letter X only)            semeion       all (no writer ids: test only, never trained)
                                                    kawalc1       real C1 box crops (bench reads them as they are)

Writer choices are deterministic: a writer id is held out / goes to the calibration half by a
SHA-256 of the id (`_bucket`), not by order or a random stream, so adding writers never moves others.
FEMNIST: a third of all 178 writer ids is held out (both LEAF arrays, since LEAF splits each writer's
digits 90/10 across them). Calibration writers are only ever used to fit the temperature and the
confusion matrix; test writers only to measure.

Caveat: MNIST and FEMNIST both come from NIST (SD-1/SD-3 vs SD-19). MNIST has no writer ids, so
FEMNIST's held-out writers may have other digits (or the same ones) in MNIST's training split;
`femnist-test` is the least strictly unseen of the sets. CVL, optdigits and Semeion share no source
with any training set other than their own train split.

Normalisation, to what `GlyphBank` expects (white ink on black, cropped to the ink by the bank):
CVL's dark-grey background (about 9, varying per image) is subtracted and each image stretched so
its inkiest pixels are 255; FEMNIST's thumbnails are small in the frame (ink 8-14 px high): they are
cropped to the ink and brought up to 28 px high (cubic, then the same contrast stretch), so that
they are not upscaled from a 10 px bitmap by the renderer's linear resize; optdigits and Semeion are
binary 0/255 bitmaps, blurred lightly (their step edges are not what a pen leaves).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TRAIN_SETS = ("mnist", "cvl", "femnist", "optdigits", "comnist-x")
CALIB_SETS = ("cvl-calib", "femnist-calib")
TEST_SETS = ("cvl-test", "femnist-test", "optdigits-test", "semeion", "mnist-test")
FEMNIST_HELD_OUT = 3  # one writer in three


def _bucket(writer: str, salt: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{writer}".encode()).digest()[:4], "big") % n


def femnist_held_out(writer: str) -> bool:
    return _bucket(writer, "femnist-held-out", FEMNIST_HELD_OUT) == 0


def calibration_half(writer: str, corpus: str) -> bool:
    """True for the calibration half of a held-out corpus's writers, False for its test half."""
    return _bucket(writer, f"{corpus}-calibration", 2) == 0


@dataclass
class Glyphs:
    """White-on-black images (n, H, W) uint8, labels (n,) ('0'..'9' or 'X'), writer ids (n,) str."""

    name: str
    x: np.ndarray
    labels: np.ndarray
    writers: np.ndarray

    def describe(self) -> str:
        return f"{self.name}: {len(self.labels)} glyphs, {len(set(self.writers.tolist()))} writers"


def _stretch(x: np.ndarray) -> np.ndarray:
    """Background (median of the image border) to 0, the 99.5th percentile of the ink to 255, per image."""
    x = x.astype(np.float32)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    bg = np.median(border, axis=1)[:, None, None]
    top = np.percentile(x.reshape(len(x), -1), 99.5, axis=1)[:, None, None]
    return np.clip((x - bg) * 255 / np.maximum(top - bg, 40), 0, 255).astype(np.uint8)


def _upscale_small(x: np.ndarray, height: int = 28) -> list[np.ndarray]:
    """Each image cropped to its ink and resized (cubic) so the ink is `height` px high."""
    out = []
    for image in x:
        ys, xs = np.nonzero(image > 40)
        if len(xs) < 4:
            out.append(image)
            continue
        ink = image[max(ys.min() - 1, 0): ys.max() + 2, max(xs.min() - 1, 0): xs.max() + 2]
        f = height / ink.shape[0]
        big = cv2.resize(ink, (max(2, round(ink.shape[1] * f)), height + 2), interpolation=cv2.INTER_CUBIC)
        out.append(_stretch(cv2.copyMakeBorder(big, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)[None])[0])
    return out


def _soften(x: np.ndarray) -> np.ndarray:
    """Binary bitmaps, upscaled 2x and blurred a little: grey stroke edges like a scanned pen's."""
    return np.stack([cv2.GaussianBlur(cv2.resize(i, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR), (3, 3), 0.8)
                     for i in x])


def _digits(name: str, x, y, writers) -> Glyphs:
    labels = np.array([str(int(v)) for v in y])
    return Glyphs(name, x, labels, np.asarray(writers).astype(str))


def glyphs(name: str, data: Path = DATA) -> Glyphs:
    """One named split (see the module docstring), normalised for `GlyphBank`."""
    if name in ("mnist", "mnist-test"):
        with np.load(data / "mnist.npz") as d:
            part = "train" if name == "mnist" else "test"
            x, y = d[f"x_{part}"], d[f"y_{part}"]
        return _digits(name, x, y, np.full(len(y), f"mnist-{part}"))  # MNIST has no writer ids
    if name.startswith("cvl"):
        with np.load(data / "cvl_single_digits_dev.npz") as d:
            part = "train" if name == "cvl" else "valid"
            x, y, w = _stretch(d[f"x_{part}"]), d[f"y_{part}"], d[f"writer_{part}"].astype(str)
        if name != "cvl":
            keep = np.array([calibration_half(v, "cvl") == (name == "cvl-calib") for v in w])
            x, y, w = x[keep], y[keep], w[keep]
        return _digits(name, x, y, np.char.add("cvl-", w))
    if name.startswith("femnist"):
        with np.load(data / "femnist_leaf_digits.npz") as d:
            x = np.concatenate([d["x_train"], d["x_test"]])
            y = np.concatenate([d["y_train"], d["y_test"]])
            w = np.concatenate([d["writer_train"], d["writer_test"]]).astype(str)
        held = np.array([femnist_held_out(v) for v in w])
        if name == "femnist":
            keep = ~held
        else:
            keep = held & np.array([calibration_half(v, "femnist") == (name == "femnist-calib") for v in w])
        images = np.empty(int(keep.sum()), dtype=object)  # ragged: each glyph at its own size
        images[:] = _upscale_small(x[keep])
        return _digits(name, images, y[keep], w[keep])
    if name.startswith("optdigits"):
        with np.load(data / "optdigits32.npz") as d:
            part = "train" if name == "optdigits" else "test"
            x, y = _soften(d[f"x_{part}"]), d[f"y_{part}"]
        return _digits(name, x, y, np.full(len(y), f"optdigits-{part}"))  # writers not recorded per digit
    if name == "semeion":
        with np.load(data / "semeion.npz") as d:
            x, y = _soften(_soften(d["x"])), d["y"]
        return _digits(name, x, y, np.full(len(y), "semeion"))
    if name == "comnist-x":
        with np.load(data / "comnist_letters_x.npz") as d:
            x = d["x"][np.char.upper(d["letter"].astype(str)) == "X"]
        return Glyphs(name, x, np.full(len(x), "X"), np.full(len(x), "comnist"))
    raise KeyError(f"unknown split {name!r}; known: {TRAIN_SETS + CALIB_SETS + TEST_SETS}")


def check_disjoint(data: Path = DATA) -> dict[str, int]:
    """Writer counts per split; raises if a held-out writer is also a training writer (where ids exist)."""
    counts, train_writers = {}, set()
    for name in ("cvl", "femnist"):
        g = glyphs(name, data)
        train_writers |= set(g.writers.tolist())
        counts[name] = len(set(g.writers.tolist()))
    for name in ("cvl-calib", "cvl-test", "femnist-calib", "femnist-test"):
        g = glyphs(name, data)
        writers = set(g.writers.tolist())
        if writers & train_writers:
            raise AssertionError(f"{name} shares writers with training: {sorted(writers & train_writers)[:5]}")
        counts[name] = len(writers)
    for a, b in (("cvl-calib", "cvl-test"), ("femnist-calib", "femnist-test")):
        if set(glyphs(a, data).writers.tolist()) & set(glyphs(b, data).writers.tolist()):
            raise AssertionError(f"{a} and {b} share writers")
    return counts


if __name__ == "__main__":
    for split in TRAIN_SETS + CALIB_SETS + TEST_SETS:
        print(glyphs(split).describe())
    print("writers per split (ids recorded):", check_disjoint())

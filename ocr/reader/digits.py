"""Read digit boxes: clean each crop, then a small CNN gives calibrated probabilities over 13 classes.

Public contract (outside tools rely on it): `DigitClassifier().predict(crops)` takes grayscale
uint8 crops of single boxes (dark ink on light paper, any size, printed frame included as a
reader cuts it) and returns an (n, 13) float32 array of probabilities in the order of `CLASSES`:
'0'..'9', 'X' (filler in unused leading boxes), '-' (dash filler), 'blank'.

The network was trained by train/train_digits.py on boxes cut by the reader from synthetic
photos (ocr/synth/crops.py); it runs with onnxruntime, which reads these small batches about
four times faster than OpenCV's DNN module (bench/digits_bench.py measures both).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "X", "-", "blank")
BLANK, X_FILLER, DASH = 12, 10, 11
CROP_PX = 48  # crops are brought to this size before cleaning (the reader cuts at this size)
INPUT_PX = 32  # network input, ink = 1.0 on paper = 0.0
MIN_INK_SHARE = 0.4  # ink must be this much darker than paper (share of paper level) to count fully
# A crop cut without its frame has no printed black to scale by: a faint watermark or shadow must not become ink.
FRAME_LINE = 0.6  # a straight run this share of the crop long, near the border, is printed frame


def _resized(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """(n, CROP_PX, CROP_PX) uint8 stack of the crops at the reader's cut size."""
    out = np.empty((len(crops), CROP_PX, CROP_PX), np.uint8)
    for i, crop in enumerate(crops):
        crop = np.asarray(crop, dtype=np.uint8)
        if crop.ndim != 2:
            raise ValueError(f"expected 2-D grayscale crops, got shape {crop.shape}")
        if crop.shape != (CROP_PX, CROP_PX):
            shrink = min(crop.shape) > CROP_PX
            crop = cv2.resize(crop, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out[i] = crop
    return out


def _quantile(values: np.ndarray, q: float) -> np.ndarray:
    """Per-row q-quantile (lower) of an (n, m) array; a partial sort, cheaper than np.percentile."""
    k = int(q * (values.shape[1] - 1))
    return np.partition(values, k, axis=1)[:, k]


def ink_maps(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Ink coverage per crop, uint8 (n, CROP_PX, CROP_PX): the box's own paper 0, as dark as the frame 255.

    Paper is measured inside the box, whose print may be shaded, so that an empty box reads as no ink.
    """
    gray = _resized(crops)
    n, q = len(gray), CROP_PX // 4
    paper = _quantile(gray[:, q:-q, q:-q].reshape(n, -1), 0.9).astype(np.float32)
    darkest = _quantile(gray.reshape(n, -1), 0.005).astype(np.float32)
    gain = (255.0 / np.maximum(paper - darkest, MIN_INK_SHARE * paper))[:, None, None]
    return np.clip((paper[:, None, None] - gray) * gain, 0, 255).astype(np.uint8)


_BAND = np.ones((CROP_PX, CROP_PX), bool)
_BAND[CROP_PX // 4: -CROP_PX // 4, CROP_PX // 4: -CROP_PX // 4] = False  # a long stroke in the middle is writing
_LINE_PX = int(CROP_PX * FRAME_LINE) | 1  # odd: an even-length opening drops a line's last pixel
_LINE_KERNELS = (np.ones((1, _LINE_PX), np.uint8), np.ones((_LINE_PX, 1), np.uint8))


def remove_frame(inks: np.ndarray) -> np.ndarray:
    """Ink (n, CROP_PX, CROP_PX) uint8 minus long straight lines near each border (the printed frame).

    Strokes crossing the frame lose only the overlap. Row-wise openings run on the crops stacked
    top to bottom and column-wise ones on them side by side, so that no line runs across two crops.
    """
    n = len(inks)
    across = cv2.morphologyEx(inks.reshape(n * CROP_PX, CROP_PX), cv2.MORPH_OPEN, _LINE_KERNELS[0]).reshape(inks.shape)
    side_by_side = np.ascontiguousarray(inks.transpose(1, 0, 2)).reshape(CROP_PX, n * CROP_PX)
    down = cv2.morphologyEx(side_by_side, cv2.MORPH_OPEN, _LINE_KERNELS[1]).reshape(CROP_PX, n, CROP_PX)
    lines = np.maximum(across, down.transpose(1, 0, 2))
    return np.where(_BAND, cv2.subtract(inks, lines), inks)


def cleaned(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """(n, CROP_PX, CROP_PX) uint8 ink of grayscale uint8 crops, printed frames removed: what the network reads
    (`network_input`) and the page hash sees."""
    if len(crops) == 0:
        return np.zeros((0, CROP_PX, CROP_PX), np.uint8)
    return remove_frame(ink_maps(crops))


def prepare(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """(n, 1, INPUT_PX, INPUT_PX) float32 network input in [0, 1] from grayscale uint8 crops."""
    return network_input(cleaned(crops))


def network_input(clean: np.ndarray) -> np.ndarray:
    """(n, 1, INPUT_PX, INPUT_PX) float32 network input in [0, 1] from `cleaned` crops."""
    n = len(clean)
    # CROP_PX / INPUT_PX = 1.5 exactly, so area resampling of the stack never mixes two crops.
    small = cv2.resize(clean.reshape(n * CROP_PX, CROP_PX), (INPUT_PX, n * INPUT_PX), interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) * (1 / 255)).reshape(n, 1, INPUT_PX, INPUT_PX)


SECOND_LOOK_SHIFT_PX = 1.5  # at CROP_PX: one pixel of the network's input


def mean_over_views(predict_cleaned: Callable[[np.ndarray], np.ndarray], clean: np.ndarray,
                    as_cut: np.ndarray | None = None) -> np.ndarray:
    """(n, 13) mean of `predict_cleaned` (a model's probabilities of `cleaned` crops) over the crops as cut and their
    four `shifted_views`; `as_cut`: `predict_cleaned(clean)`, where the caller has it already."""
    if len(clean) == 0:
        return np.zeros((0, len(CLASSES)), np.float32)
    looks = [predict_cleaned(clean) if as_cut is None else as_cut]
    looks += [predict_cleaned(view) for view in shifted_views(clean)]
    return np.mean(looks, axis=0).astype(np.float32)


def shifted_views(clean: np.ndarray) -> list[np.ndarray]:
    """`cleaned` crops (n, CROP_PX, CROP_PX) moved by SECOND_LOOK_SHIFT_PX right, left, down and up (bilinear, paper
    coming in at the border): four (n, CROP_PX, CROP_PX) views. Horizontal moves run on the crops stacked top to
    bottom, vertical ones side by side, so that no crop's ink enters another's."""
    n, s = len(clean), SECOND_LOOK_SHIFT_PX
    stacked = clean.reshape(n * CROP_PX, CROP_PX)
    side_by_side = np.ascontiguousarray(clean.transpose(1, 0, 2)).reshape(CROP_PX, n * CROP_PX)
    views = []
    for dx in (s, -s):
        moved = cv2.warpAffine(stacked, np.float32([[1, 0, dx], [0, 1, 0]]), stacked.shape[::-1], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        views.append(moved.reshape(n, CROP_PX, CROP_PX))
    for dy in (s, -s):
        moved = cv2.warpAffine(side_by_side, np.float32([[1, 0, 0], [0, 1, dy]]), side_by_side.shape[::-1],
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        views.append(moved.reshape(CROP_PX, n, CROP_PX).transpose(1, 0, 2))
    return views


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by count."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(conf[inside].mean() - (pred[inside] == labels[inside]).mean())
    return float(ece)


def top_calibrated(probs: np.ndarray, top: tuple[float, float] | None) -> np.ndarray:
    """A single temperature leaves a label-smoothed model too doubtful of its surer reads (on the calibration writers,
    boxes at p 0.995-0.998 were wrong 1 time in 2,700, not 1 in 310): each box's residual r = 1 - p_top becomes
    a r^b where that is smaller, the other classes keeping their shares of it. (a, b) are fitted on those writers
    by likelihood (train/calibrate_top.py); None: unchanged."""
    if top is None or len(probs) == 0:
        return probs
    a, b = top
    rows, best = np.arange(len(probs)), probs.argmax(axis=1)
    residual = np.clip(1.0 - probs[rows, best], 1e-12, None)
    scale = np.minimum(a * residual ** b, residual) / residual
    out = probs * scale[:, None]
    out[rows, best] = 1.0 - residual * scale
    return out


SHIPPED = resources.files("ocr.reader.models")  # digits.onnx + digits.json in the package
FLOOR_PSEUDOCOUNT = 1.0  # reads of each class added, spread by the priors, to the measured confusions


@dataclass(frozen=True)
class ModelInfo:
    """What train/train_digits.py wrote beside the weights."""

    temperature: float
    classes: tuple[str, ...]
    input_px: int
    trained: dict
    confusion_counts: np.ndarray | None = None  # (13, 13): boxes of true class i read as j, on unseen writers
    top_calibration: tuple[float, float] | None = None  # (a, b): a box's residual r becomes a r^b where that is smaller

    @classmethod
    def load(cls, folder=SHIPPED) -> "ModelInfo":
        raw = json.loads(folder.joinpath("digits.json").read_text())
        counts = raw.get("confusion_calibration_writers", {}).get("counts")
        top = raw.get("top_calibration")
        return cls(float(raw["temperature"]), tuple(raw["classes"]), int(raw["input_px"]), raw.get("trained", {}),
                   None if counts is None else np.array(counts, np.float64),
                   None if top is None else (float(top["a"]), float(top["b"])))

    def true_given_read(self) -> np.ndarray | None:
        """(13, 13): P(true class i | read as j) in column j, from the confusions measured on writers the model never
        saw, each column smoothed by FLOOR_PSEUDOCOUNT reads spread like the classes' own counts; None without them."""
        if self.confusion_counts is None:
            return None
        counts = self.confusion_counts
        prior = (counts.sum(axis=1) + 1.0) / (counts.sum() + len(counts))
        smoothed = counts + FLOOR_PSEUDOCOUNT * prior[:, None]
        return smoothed / smoothed.sum(axis=0, keepdims=True)


@lru_cache(maxsize=4)
def weights_sha256(folder=SHIPPED, name: str = "digits.onnx") -> str:
    """sha256 of a model's weights (by default the shipped digit model's; `name`: another model's file, e.g.
    tally.onnx): the model's version in every record."""
    return hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()


@lru_cache(maxsize=4)
def _session(threads: int, folder=SHIPPED):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(folder.joinpath("digits.onnx").read_bytes(), options, providers=["CPUExecutionProvider"])


class DigitClassifier:
    """Calibrated 13-class probabilities for box crops; see the module docstring for the contract. `model`: a
    folder with digits.onnx and digits.json (default: the shipped model)."""

    classes = CLASSES

    def __init__(self, threads: int = 1, model=SHIPPED) -> None:
        self.info = ModelInfo.load(model)
        if self.info.classes != CLASSES or self.info.input_px != INPUT_PX:
            raise RuntimeError(f"{model}/digits.json does not match this reader (classes or input size)")
        self._session = _session(threads, model)
        self.version = weights_sha256(model)[:12]
        self.floor = self.info.true_given_read()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw network outputs for prepared input (see `prepare`)."""
        return self._session.run(None, {"crops": batch})[0]

    def predict(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        return self.predict_cleaned(cleaned(crops))

    def predict_cleaned(self, clean: np.ndarray) -> np.ndarray:
        """`predict` of crops already `cleaned` (the reader cleans each page's boxes once, for this and its hash)."""
        if len(clean) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        return self.calibrated(self.logits(network_input(clean)))

    def predict_second_look(self, clean: np.ndarray, as_cut: np.ndarray | None = None) -> np.ndarray:
        """The mean of `predict_cleaned` over the crops as cut and their four `shifted_views`: a stranger's
        confident misread is often one view's alone (on the calibration writers, never measured on: CVL digits
        96.85 -> 97.07 %, confidently wrong 0.33 -> 0.14 %; FEMNIST 99.11 -> 99.23 %, 0.06 -> 0.02 %; blanks read
        as digits 0.4 -> 0 %; scaled and turned views added nothing but blanks read as digits). `as_cut`:
        `predict_cleaned(clean)`, where the caller has it already."""
        return mean_over_views(self.predict_cleaned, clean, as_cut)

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from raw outputs: the temperature, then the top calibration (where the model has one)."""
        z = logits / self.info.temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return top_calibrated(z / z.sum(axis=1, keepdims=True), self.info.top_calibration).astype(np.float32)

    def floored(self, probs: np.ndarray, min_residual: float) -> np.ndarray:
        """`probs` (n, 13) with a floor under every class but the top one: `min_residual` shared out as the
        confusions measured on unseen writers share a box read as that top class (a read 7 is most often a 1), so
        that a saturated softmax on a stranger's 7 still leaves the joint decoding the 1 it may be. A doubtful
        read, whose other classes are above the floor already, is unchanged. Without confusions: unchanged."""
        if self.floor is None or len(probs) == 0:
            return probs
        top = probs.argmax(axis=1)
        rows = np.arange(len(top))
        shape = self.floor[:, top].T.copy()  # (n, 13): P(true | read as each box's top class)
        shape[rows, top] = 0.0
        shape /= shape.sum(axis=1, keepdims=True)
        out = np.maximum(probs, min_residual * shape)
        return out / out.sum(axis=1, keepdims=True)

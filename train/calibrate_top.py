"""Fit the top calibration of the shipped digit model on the calibration writers; write it into digits.json.

    python train/make_crops.py --out /tmp/cal/cvl-calib --tps 40 --seed 901 --splits cvl-calib --profile phone --own-hands
    python train/make_crops.py --out /tmp/cal/femnist-calib --tps 40 --seed 901 --splits femnist-calib --profile phone \\
        --own-hands
    python train/calibrate_top.py --calib /tmp/cal/cvl-calib /tmp/cal/femnist-calib [--model ocr/reader/models]

After the temperature, a box's residual r = 1 - p_top becomes a r^b where that is smaller
(`ocr.reader.digits.top_calibrated`); (a, b) maximise the likelihood of the boxes' errors
(top class wrong) on crops of writers the model never trained on (train/splits.py's calibration
halves; never measured on). Prints the reliability by top probability before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.reader.digits import DigitClassifier, prepare, top_calibrated  # noqa: E402
from ocr.synth.crops import CropSet  # noqa: E402

BINS = (0.0, 0.9, 0.99, 0.995, 0.998, 0.999, 0.9999, 1.01)


def boxes(folders: list[Path], model: Path) -> tuple[np.ndarray, np.ndarray]:
    """Temperature-scaled probabilities (no top calibration) and labels of every crop in the folders' shards."""
    classifier = DigitClassifier(model=model)
    probs, labels = [], []
    for folder in folders:
        for path in sorted(folder.glob("shard-*.npz")):
            crops = CropSet.load(path)
            z = classifier.logits(prepare(crops.crops)) / classifier.info.temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            probs.append(z / z.sum(axis=1, keepdims=True))
            labels.append(crops.labels)
    return np.concatenate(probs).astype(np.float64), np.concatenate(labels)


def log_likelihood(residual: np.ndarray, wrong: np.ndarray, a: float, b: float) -> float:
    r = np.clip(np.minimum(a * residual ** b, residual), 1e-12, 1 - 1e-12)
    return float(np.sum(np.where(wrong, np.log(r), np.log1p(-r))))


def fit(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    residual = np.clip(1.0 - probs.max(axis=1), 1e-12, None)
    wrong = probs.argmax(axis=1) != labels
    grid = [(a, b) for b in np.arange(1.0, 3.01, 0.05) for a in np.exp(np.arange(-2.0, 8.01, 0.1))]
    return max(grid, key=lambda ab: log_likelihood(residual, wrong, *ab))


def reliability(probs: np.ndarray, labels: np.ndarray) -> str:
    top, ok = probs.max(axis=1), probs.argmax(axis=1) == labels
    rows = []
    for lo, hi in zip(BINS, BINS[1:]):
        m = (top >= lo) & (top < hi)
        if m.any():
            rows.append(f"  p in [{lo}, {hi}): {m.sum()} boxes, mean p {top[m].mean():.5f}, right {ok[m].mean():.5f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calib", type=Path, nargs="+", required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "ocr" / "reader" / "models")
    args = parser.parse_args()
    probs, labels = boxes(args.calib, args.model)
    a, b = fit(probs, labels)
    print(f"{len(labels)} boxes of calibration writers; before (temperature only):\n{reliability(probs, labels)}")
    print(f"fitted a = {a:.4g}, b = {b:.3g}; after:\n{reliability(top_calibrated(probs, (a, b)), labels)}")
    info_path = args.model / "digits.json"
    info = json.loads(info_path.read_text())
    info["top_calibration"] = {"a": round(a, 6), "b": round(b, 4), "boxes": int(len(labels)),
                               "fitted_on": [str(p) for p in args.calib],
                               "made_by": "python train/calibrate_top.py --calib " + " ".join(map(str, args.calib))}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote top_calibration into {info_path}")


if __name__ == "__main__":
    main()

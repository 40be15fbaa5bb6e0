"""Box reading on writers never trained on: every held-out set on its own, several models side by side.

    python bench/unseen_writers.py --make /tmp/d/eval --tps 60 --workers 16      # the crop sets (once)
    python bench/unseen_writers.py --crops /tmp/d/eval --model old=/tmp/old --model new=ocr/reader/models

`--make` writes, per held-out split of train/splits.py, box crops cut by the reader from synthetic
`phone` photos written with that split's glyphs only (train/make_crops.py --own-hands: the writers'
own 1s and 7s, no flag or bar added; X's, dashes and blank boxes as officers leave them, the X's and
dashes procedural). Test sets at seed --seed (default 900), the calibration writers at --seed + 1
into DIR/cvl-calib and DIR/femnist-calib (for train/train_digits.py --calib; never measured here).
The kawalc1 real C1 crops are read as they are (class 13, 'other', left out).

Per set and model: digit accuracy, confidently wrong (top p >= 0.99 and wrong, share of digit boxes),
ECE over the digit boxes, blank read as a digit, X read right, per-digit accuracy, top confusions;
then 60 boxes on one core (cleaning included) per model. A model is a folder with digits.onnx and
digits.json (ocr/reader/models is the shipped one); the probabilities are exactly DigitClassifier.predict's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.digits_bench import confusions, kawalc1_crops  # noqa: E402
from ocr.reader.digits import (  # noqa: E402
    BLANK,
    CLASSES,
    X_FILLER,
    cleaned,
    expected_calibration_error,
    mean_over_views,
    network_input,
)
from ocr.synth.crops import CropSet  # noqa: E402
from train.splits import CALIB_SETS, DATA, TEST_SETS  # noqa: E402

CONFIDENT = 0.99
TARGETS = "targets (issue 16): digits >= 98.5 %, confidently wrong <= 0.2 %, blank as digit <= 0.05 %, X right >= 99.5 %"


class Model:
    """digits.onnx + digits.json from a folder, read as DigitClassifier reads the shipped one."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        info = json.loads((folder / "digits.json").read_text())
        if tuple(info["classes"]) != CLASSES:
            raise SystemExit(f"{folder}: classes differ from the reader's")
        self.temperature = float(info["temperature"])
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(folder / "digits.onnx"), options, providers=["CPUExecutionProvider"])

    def predict(self, crops) -> np.ndarray:
        return self.predict_cleaned(cleaned(crops)) if len(crops) else np.zeros((0, len(CLASSES)), np.float32)

    def predict_cleaned(self, clean: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(clean), 2048):
            z = self.session.run(None, {"crops": network_input(clean[i: i + 2048])})[0] / self.temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            out.append((z / z.sum(axis=1, keepdims=True)).astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)

    def predict_second_look(self, crops) -> np.ndarray:
        """The mean over each crop and its four shifted views, as DigitClassifier.predict_second_look takes it."""
        return mean_over_views(self.predict_cleaned, cleaned(crops))


def make_sets(out: Path, tps: int, seed: int, workers: int, data: Path) -> None:
    for name, s in [*((n, seed) for n in TEST_SETS), *((n, seed + 1) for n in CALIB_SETS)]:
        if (out / name).exists() and any((out / name).glob("shard-*.npz")):
            continue
        subprocess.run([sys.executable, str(ROOT / "train" / "make_crops.py"), "--out", str(out / name), "--tps", str(tps),
                        "--seed", str(s), "--workers", str(workers), "--chunk", str(max(1, min(10, tps // workers))),
                        "--splits", name, "--data", str(data), "--profile", "phone", "--own-hands"], check=True)


def load_set(folder: Path) -> CropSet:
    return CropSet.concat([CropSet.load(p) for p in sorted(folder.glob("shard-*.npz"))], 48)


def measure(labels: np.ndarray, probs: np.ndarray) -> dict:
    pred, top = probs.argmax(1), probs.max(1)
    digit = labels < 10

    def share(mask: np.ndarray, hit: np.ndarray) -> float | None:
        return float(hit[mask].mean()) if mask.any() else None

    return {"digits": int(digit.sum()), "digit_accuracy": share(digit, pred == labels),
            "confidently_wrong": share(digit, (pred != labels) & (top >= CONFIDENT)),
            "ece_digits": expected_calibration_error(probs[digit], labels[digit]) if digit.any() else None,
            "blanks": int((labels == BLANK).sum()), "blank_as_digit": share(labels == BLANK, pred < 10),
            "xs": int((labels == X_FILLER).sum()), "x_right": share(labels == X_FILLER, pred == labels),
            "per_digit": {c: share(labels == i, pred == labels) for i, c in enumerate(CLASSES[:10])},
            "confusions": confusions(labels, pred, 6)}


def pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f} %"


def timing(model: Model, crops: np.ndarray) -> float:
    """Median ms for 60 boxes, cleaning included, one core."""
    batch = crops[:60]
    model.predict(batch)
    times = []
    for _ in range(30):
        t = time.perf_counter()
        model.predict(batch)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--make", type=Path, help="write the held-out crop sets here")
    parser.add_argument("--crops", type=Path, help="read the held-out crop sets from here")
    parser.add_argument("--tps", type=int, default=60, help="TPS per set with --make")
    parser.add_argument("--seed", type=int, default=900)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--second-look", action="store_true",
                        help="also each model's mean over the crop and its shifted views (the reader's second look)")
    args = parser.parse_args()
    if args.make:
        make_sets(args.make, args.tps, args.seed, args.workers, args.data)
        if not args.crops:
            return
    if not args.crops:
        parser.error("give --crops (or --make)")
    cv2.setNumThreads(1)
    named = args.model or [f"shipped={ROOT / 'ocr' / 'reader' / 'models'}"]
    models = {k: Model(Path(v)) for k, v in (m.split("=", 1) for m in named)}
    sets: dict[str, tuple[list | np.ndarray, np.ndarray]] = {}
    for name in TEST_SETS:
        if (args.crops / name).exists():
            s = load_set(args.crops / name)
            sets[name] = (s.crops, s.labels.astype(np.int64))
    if (args.data / "kawalc1_c1_crops.npz").exists():
        crops, labels, _ = kawalc1_crops(args.data / "kawalc1_c1_crops.npz")
        sets["kawalc1-real"] = (crops, labels)
    results: dict = {"targets": TARGETS, "sets": {}, "timing_ms_60_boxes": {}}
    head = ("set | model | digit boxes | digits right | confidently wrong | ECE (digits) | blank as digit | X right | "
            + " | ".join(CLASSES[:10]))
    lines = [head, " | ".join(["---"] * (8 + 10))]
    notes = []
    for name, (crops, labels) in sets.items():
        looks = [(model_name, model.predict) for model_name, model in models.items()]
        if args.second_look:
            looks += [(f"{model_name} + second look", model.predict_second_look) for model_name, model in models.items()]
        for model_name, predict in looks:
            m = measure(labels, predict(crops))
            results["sets"].setdefault(name, {})[model_name] = m
            lines.append(" | ".join([name, model_name, str(m["digits"]), pct(m["digit_accuracy"]),
                                     pct(m["confidently_wrong"]), "-" if m["ece_digits"] is None else f"{m['ece_digits']:.4f}",
                                     f"{pct(m['blank_as_digit'])} ({m['blanks']})", f"{pct(m['x_right'])} ({m['xs']})",
                                     *(pct(v, 1) for v in m["per_digit"].values())]))
            notes.append(f"{name} / {model_name}: {m['confusions']}")
    synth = next((c for n, (c, _) in sets.items() if n != "kawalc1-real"), None)
    for model_name, model in models.items():
        if synth is not None:
            results["timing_ms_60_boxes"][model_name] = timing(model, synth)
    print(TARGETS)
    print("\n".join(lines))
    print("top confusions (true->read):\n  " + "\n  ".join(notes))
    print("60 boxes on one core, cleaning included (median of 30): " + ", ".join(
        f"{k} {v:.2f} ms" for k, v in results["timing_ms_60_boxes"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

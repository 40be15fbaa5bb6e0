"""Box reading benchmark: the shipped classifier against Tesseract's digit mode on the same crops.

    python bench/digits_bench.py [--data ../shared/data] [--tps 200] [--workers 2] [--tesseract 1500]

Held-out sets, all cut by the reader from synthetic `phone` photos (ocr/synth/crops.py) written
with handwriting never used in training (MNIST's test split; training used its train split), at
seeds the training never drew:
  mnist         every template, plain MNIST hands (no flagged 1s, no crossed 7s)
  guide-traced  PPWP 2024 totals boxes (dotted seven-segment guide), every digit traced along it
  flag-1-cross-7 every template, every 1 flagged and every 7 crossed
plus the real box crops of Indonesian C1 forms (kawalc1_c1_crops.npz) and the real 2024 photos in
../shared/real that align. Prints per set: digit accuracy, blank read as a digit, X and dash read
right, per-class accuracy where asked, expected calibration error; then the time to read 60 boxes
on one core (cleaning included) with onnxruntime and with OpenCV's DNN module.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.reader.digits import BLANK, CLASSES, DASH, X_FILLER, DigitClassifier, prepare  # noqa: E402
from ocr.reader.digits import expected_calibration_error as ece  # noqa: E402
from ocr.synth.crops import GLYPH_CLASS, CropSet, tps_crops  # noqa: E402
from ocr.synth.handwriting import GlyphBank  # noqa: E402
from ocr.synth.job import SynthJob  # noqa: E402
from ocr.templates.catalog import load_templates  # noqa: E402

SETS = {
    "mnist": ((("flags_ones", False), ("crosses_sevens", False)), None),
    "guide-traced": ((("blocky", 1.0), ("flags_ones", False), ("crosses_sevens", False)), "ppwp-2024"),
    "flag-1-cross-7": ((("flags_ones", True), ("crosses_sevens", True)), None),
}
_bank: GlyphBank | None = None
_SPAWN = multiprocessing.get_context("spawn")  # this process holds onnxruntime's threads: never fork it


def _init(bank: GlyphBank) -> None:
    global _bank
    _bank = bank
    cv2.setNumThreads(1)


def _one(name: str, seed: int, index: int) -> CropSet:
    style, template = SETS[name]
    ids = sorted(load_templates())
    template = template or ids[index % len(ids)]
    job = SynthJob(template_id=template, count=1, out_dir=Path("."), seed=seed, profile="phone", style=style)
    crops = tps_crops(job, template, index, _bank)
    if name == "guide-traced":  # only the boxes that carry the guide
        guided = {f.id for p in load_templates()[template].pages for f in p.fields if f.guide == "seven_segment"}
        keep = np.isin(crops.field_id, list(guided))
        crops = CropSet(crops.crops[keep], crops.labels[keep], crops.template[keep], crops.field_id[keep],
                        crops.refused_pages)
    return crops


def make_set(name: str, bank: GlyphBank, tps: int, seed: int, workers: int) -> CropSet:
    with ProcessPoolExecutor(workers, mp_context=_SPAWN, initializer=_init, initargs=(bank,)) as pool:
        return CropSet.concat(list(pool.map(_one, [name] * tps, [seed] * tps, range(1, tps + 1))), 48)


def tesseract_read(crops: np.ndarray) -> np.ndarray:
    """Tesseract's single-character digit mode on each crop, cleaned the same way (frame removed, 3x)."""
    import pytesseract

    clean = prepare(crops)[:, 0]
    out = np.empty(len(crops), np.int64)
    for i, ink in enumerate(clean):
        page = cv2.copyMakeBorder(255 - np.uint8(ink * 255), 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255)
        page = cv2.resize(page, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        text = pytesseract.image_to_string(page, config="--psm 10 -c tessedit_char_whitelist=0123456789X-").strip()
        out[i] = GLYPH_CLASS.get(text[:1].upper(), BLANK) if text else BLANK
    return out


def _tesseract_pool(crops: np.ndarray, workers: int) -> np.ndarray:
    with ProcessPoolExecutor(workers, mp_context=_SPAWN) as pool:
        return np.concatenate(list(pool.map(tesseract_read, np.array_split(crops, workers * 4))))


def table(name: str, labels: np.ndarray, pred: np.ndarray, probs: np.ndarray | None, per_class: str = "") -> str:
    digit = labels < 10

    def rate(mask: np.ndarray, hit: np.ndarray) -> str:
        return f"{hit[mask].mean():.4%} ({int(mask.sum())})" if mask.any() else "-"

    cells = [name, rate(digit, pred == labels), rate(labels == BLANK, pred < 10), rate(labels == X_FILLER, pred == labels),
             rate(labels == DASH, pred == labels)]
    cells += [rate(labels == CLASSES.index(c), pred == labels) for c in per_class]
    cells.append(f"{ece(probs, labels):.4f}" if probs is not None else "-")
    return " | ".join(cells)


def confusions(labels: np.ndarray, pred: np.ndarray, top: int = 8) -> str:
    pairs: dict[tuple[str, str], int] = {}
    for t, p in zip(labels[labels != pred], pred[labels != pred]):
        pairs[(CLASSES[t], CLASSES[p])] = pairs.get((CLASSES[t], CLASSES[p]), 0) + 1
    worst = sorted(pairs.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{t}->{p} x{n}" for (t, p), n in worst) or "none"


def kawalc1_crops(path: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Real C1 box crops cut to their true size, their labels and years; class 13 (other) left out."""
    crops, labels, years = [], [], []
    with np.load(path) as d:
        for year in ("2014", "2017", "2019"):
            xs, ys = d[f"x_{year}"], d[f"y_{year}"]
            hw = d[f"hw_{year}"] if f"hw_{year}" in d.files else None
            for i, (x, y) in enumerate(zip(xs, ys)):
                if y == 13:
                    continue
                h, w = (hw[i] if hw is not None else x.shape)
                crops.append(np.ascontiguousarray(x[:h, :w]))
                labels.append(int(y))
                years.append(year)
    return crops, np.array(labels), np.array(years)


def real_photo_crops(real: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Boxes of the real 2024 photos that the reader aligns, labelled from labels.json."""
    from ocr.reader.align import PageAlignment, align_page, cut_boxes
    from ocr.reader.decode import decode_photo

    labels_json = json.loads((real / "labels.json").read_text())
    crops, labels = [], []
    for name, entry in labels_json.items():
        if not entry["form"].startswith("chasil"):
            continue
        photo = decode_photo((real / name).read_bytes(), name)
        alignment = align_page(photo, tuple(load_templates().values())) if photo else photo
        if not isinstance(alignment, PageAlignment):
            print(f"  {name}: not aligned ({alignment.code})")
            continue
        for field_id, glyphs in entry["glyphs"].items():
            crops.extend(cut_boxes(photo.gray, alignment, field_id))
            labels.extend(GLYPH_CLASS[c] for c in glyphs)
    return crops, np.array(labels)


def timing(crops: np.ndarray) -> str:
    cv2.setNumThreads(1)
    classifier = DigitClassifier(threads=1)
    net = cv2.dnn.readNetFromONNX(str(ROOT / "ocr" / "models" / "digits.onnx"))
    batch = crops[:60]

    def best(fn, repeats: int = 30) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times)) * 1000

    def dnn() -> np.ndarray:
        net.setInput(prepare(batch))
        return net.forward()

    t_prep, t_ort, t_dnn = best(lambda: prepare(batch)), best(lambda: classifier.predict(batch)), best(dnn)
    return (f"60 boxes on one core (median of 30): cleaning {t_prep:.2f} ms; cleaning + onnxruntime {t_ort:.2f} ms; "
            f"cleaning + OpenCV DNN {t_dnn:.2f} ms (ratio {t_dnn / t_ort:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "real")
    parser.add_argument("--tps", type=int, default=200, help="TPS per synthetic set (mnist; the others get half)")
    parser.add_argument("--seed", type=int, default=900)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tesseract", type=int, default=1500, help="crops per set read by Tesseract (0: skip)")
    args = parser.parse_args()
    with np.load(args.data / "mnist.npz") as d, tempfile.TemporaryDirectory() as tmp:
        test_npz = Path(tmp) / "mnist_test.npz"
        np.savez(test_npz, x=d["x_test"], y=d["y_test"])
        bank = GlyphBank.from_npz([test_npz])  # X's, dashes and blocky digits are procedural in every set
    classifier = DigitClassifier()
    per = "17"
    header = "set | digits right | blank read as digit | X right | dash right | " + " | ".join(
        f"{c} right" for c in per) + " | ECE"
    rows, tess_rows, notes = [], [], []
    sample_rng = np.random.default_rng(0)
    timing_crops = None
    for name in SETS:
        t = time.perf_counter()
        crops = make_set(name, bank, args.tps if name == "mnist" else args.tps // 2, args.seed, args.workers)
        probs = classifier.predict(crops.crops)
        pred = probs.argmax(1)
        rows.append(table(name, crops.labels, pred, probs, per))
        notes.append(f"{name}: {len(crops.labels)} crops, {crops.refused_pages} pages refused, "
                     f"made in {time.perf_counter() - t:.0f} s; confusions: {confusions(crops.labels, pred)}")
        if timing_crops is None:
            timing_crops = crops.crops
        if args.tesseract:
            pick = sample_rng.choice(len(crops.labels), min(args.tesseract, len(crops.labels)), replace=False)
            tess = _tesseract_pool(crops.crops[pick], args.workers)
            tess_rows.append(table(f"{name} (Tesseract, {len(pick)} crops)", crops.labels[pick], tess, None, per))
            tess_rows.append(table(f"{name} (ours, same crops)", crops.labels[pick], pred[pick], probs[pick], per))
    if (args.data / "kawalc1_c1_crops.npz").exists():
        real_crops, real_labels, years = kawalc1_crops(args.data / "kawalc1_c1_crops.npz")
        probs = classifier.predict(real_crops)
        rows.append(table("real C1 crops (kawalc1)", real_labels, probs.argmax(1), probs, per))
        for year in ("2014", "2017", "2019"):
            rows.append(table(f"  of which {year}", real_labels[years == year], probs.argmax(1)[years == year],
                              probs[years == year], per))
        wrong = probs.argmax(1) != real_labels
        notes.append(f"real C1 crops: confidence of the right reads median {np.median(probs.max(1)[~wrong]):.3f}, "
                     f"of the wrong ones median {np.median(probs.max(1)[wrong]):.3f}, max {probs.max(1)[wrong].max():.3f}")
        notes.append(f"real C1 crops: confusions: {confusions(real_labels, probs.argmax(1))}")
        if args.tesseract:
            tess_rows.append(table("real C1 crops (Tesseract)", real_labels, tesseract_read(np.array(
                [cv2.resize(c, (48, 48)) for c in real_crops])), None, per))
    if (args.real / "labels.json").exists():
        real_crops, real_labels = real_photo_crops(args.real)
        if len(real_labels):
            probs = classifier.predict(real_crops)
            rows.append(table("real 2024 photos (aligned)", real_labels, probs.argmax(1), probs, per))
            notes.append(f"real 2024 photos: confusions: {confusions(real_labels, probs.argmax(1))}")
    print(header)
    print("\n".join(rows + tess_rows))
    print("\n".join(notes))
    print(timing(timing_crops))


if __name__ == "__main__":
    main()

"""Train the tally-cell classifier (ocr/reader/models/tally.onnx + tally.json) from train/make_tally_cells.py's shards.

    python train/make_tally_cells.py --out /tmp/tally/train --tps 1260 --seed 1 --chunk 20
    python train/make_tally_cells.py --out /tmp/tally/practice --tps 500 --seed 3 --chunk 20 --practice --keep-empty 0.3
    python train/make_tally_cells.py --out /tmp/tally/calib --tps 100 --seed 2 --chunk 10
    python train/train_tally.py --train /tmp/tally/train /tmp/tally/practice --calib /tmp/tally/calib \
        --out ocr/reader/models --seed 1 --steps 8000

Cells of 1..4 marks are rare (one partial group per row), so batches draw the classes evenly;
shifts, ink strength and noise widen what the network sees. The temperature is fitted on the
calibration TPS (other seeds, never trained on). CPU: a few minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr.reader.digits import expected_calibration_error  # noqa: E402
from ocr.reader.tally import CELL_CLASSES, INPUT_H, INPUT_W, ink  # noqa: E402
from train.train_digits import fit_temperature  # noqa: E402


def load(folders: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    parts = [np.load(f) for folder in folders for f in sorted(folder.glob("cells-*.npz"))]
    windows = np.concatenate([p["windows"] for p in parts])
    return ink(windows)[:, 0], np.concatenate([p["labels"] for p in parts]).astype(np.int64)


def net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 12, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(12, 24, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(24, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 6 * 8, len(CELL_CLASSES)))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts of up to 3 px, ink strength 0.5-1.2, sensor noise."""
    n = len(x)
    dy, dx = torch.randint(-3, 4, (2,), generator=gen).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    x = x * (0.5 + 0.7 * torch.rand(n, 1, 1, 1, generator=gen))
    x = x + torch.randn(x.shape, generator=gen) * 0.05 * torch.rand(n, 1, 1, 1, generator=gen)
    return x.clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, nargs="+", required=True)
    ap.add_argument("--calib", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x, y = load(args.train)
    xc, yc = load(args.calib)
    print(f"train {len(y)} cells {np.bincount(y, minlength=7).tolist()}; calib {len(yc)} {np.bincount(yc, minlength=7).tolist()}")
    x, xc = torch.from_numpy(x)[:, None], torch.from_numpy(xc)[:, None]
    by_class = [torch.from_numpy(np.flatnonzero(y == k)) for k in range(len(CELL_CLASSES))]
    model = net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps)
    t = time.perf_counter()
    per_class = args.batch // len(CELL_CLASSES)
    for step in range(args.steps):
        idx = torch.cat([c[torch.randint(len(c), (per_class,), generator=gen)] for c in by_class if len(c)])
        loss = F.cross_entropy(model(augment(x[idx], gen)), torch.from_numpy(y)[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(xc[i: i + 4096]) for i in range(0, len(xc), 4096)])
    labels = torch.from_numpy(yc)
    temperature = fit_temperature(logits, labels)
    probs = F.softmax(logits / temperature, 1).numpy()
    right = probs.argmax(1) == yc
    per = {CELL_CLASSES[k]: round(float(right[yc == k].mean()), 4) for k in range(len(CELL_CLASSES)) if (yc == k).any()}
    info = {"temperature": temperature, "classes": list(CELL_CLASSES), "input_hw": [INPUT_H, INPUT_W],
            "trained": {"command": " ".join(sys.argv), "seed": args.seed, "steps": args.steps, "train_cells": len(y),
                        "calibration_cells": len(yc), "calibration_accuracy": round(float(right.mean()), 5),
                        "calibration_per_class": per,
                        "calibration_ece": round(expected_calibration_error(probs, yc), 5)}}
    print(json.dumps(info["trained"], indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 1, INPUT_H, INPUT_W), args.out / "tally.onnx", input_names=["ink"],
                      output_names=["logits"], dynamic_axes={"ink": {0: "n"}, "logits": {0: "n"}}, opset_version=17,
                      dynamo=False)
    (args.out / "tally.json").write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    main()

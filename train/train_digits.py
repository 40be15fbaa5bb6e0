"""Train the box classifier on crops from train/make_crops.py; export ONNX + calibration to ocr/reader/models/.

    python train/train_digits.py --train .traindata/crops --val .traindata/val --seed 1 --epochs 14

Crops go through `ocr.reader.digits.prepare`, the very cleaning the reader runs; the network then sees
them with light random geometry, contrast, noise, smudges and frame remnants (on the GPU when
there is one). Temperature scaling on the held-out split calibrates the probabilities; the
expected calibration error before and after is printed and stored in digits.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.reader.digits import BLANK, CLASSES, INPUT_PX, expected_calibration_error, prepare  # noqa: E402
from ocr.synth.crops import CropSet  # noqa: E402


def load_prepared(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Every shard in `folder`, cleaned as the reader cleans: (n, 1, 32, 32) uint8 ink, labels."""
    xs, ys = [], []
    for path in sorted(folder.glob("shard-*.npz")):
        crops = CropSet.load(path)
        for i in range(0, len(crops.labels), 4096):
            xs.append(np.round(prepare(crops.crops[i: i + 4096]) * 255).astype(np.uint8))
        ys.append(crops.labels)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys).astype(np.int64))


def conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def make_net(width: int = 16, deep: bool = False) -> nn.Sequential:
    """Three conv stages (32 -> 16 -> 8 -> 4 px) and a small head: ~2.6 M multiply-adds a box at width 16;
    `deep` adds a fourth stage at 4 x 4 px (+1.2 M), where more channels cost little."""
    a, b, c = width, 2 * width, 4 * width
    top = [*conv(c, 2 * c)] if deep else []
    out = 2 * c if deep else c
    return nn.Sequential(*conv(1, a), nn.MaxPool2d(2), *conv(a, b), nn.MaxPool2d(2), *conv(b, c), nn.MaxPool2d(2), *top,
                         nn.Flatten(), nn.Linear(out * (INPUT_PX // 8) ** 2, 128), nn.ReLU(inplace=True),
                         nn.Dropout(0.25), nn.Linear(128, len(CLASSES)))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Light camera-like variation of a float batch (n, 1, 32, 32) in [0, 1]."""
    n, dev = len(x), x.device

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen, device=dev)

    angle, scale = u(-0.1, 0.1), u(0.9, 1.1)
    shear, shift = u(-0.1, 0.1), u(-0.08, 0.08, 2)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, (-torch.sin(angle) + shear) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    theta[:, :, 2] = shift
    x = F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)
    x = x * u(0.55, 1.25, 1, 1, 1)  # pencil to heavy ink
    # Frame remnants: a thin line along one border of some crops (what an imperfect frame removal leaves).
    has_line = torch.rand(n, generator=gen, device=dev) < 0.15
    pos = torch.randint(0, 3, (n,), generator=gen, device=dev)
    side = torch.randint(0, 4, (n,), generator=gen, device=dev)
    idx = torch.arange(INPUT_PX, device=dev)
    at = torch.where(side % 2 == 0, pos, INPUT_PX - 1 - pos)[:, None]
    rows = (idx[None, :] == at)[:, :, None].expand(n, INPUT_PX, INPUT_PX)
    lines = torch.where((side < 2)[:, None, None], rows, rows.transpose(1, 2)) & has_line[:, None, None]
    x = torch.maximum(x, lines[:, None].float() * u(0.2, 0.7, 1, 1, 1))
    # Smudges: soft grey blobs, never dark enough to look like a stroke.
    has_blob = torch.rand(n, generator=gen, device=dev) < 0.15
    cy, cx, r = u(0.1, 0.9) * INPUT_PX, u(0.1, 0.9) * INPUT_PX, u(2, 8)
    yy, xx = torch.meshgrid(idx.float(), idx.float(), indexing="ij")
    blob = torch.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / (2 * r[:, None, None] ** 2))
    x = torch.maximum(x, (blob * u(0.05, 0.25, 1, 1) * has_blob[:, None, None].float())[:, None])
    # Paper texture (watermarks, fibres, uneven light): low-frequency grey under the ink.
    has_texture = (torch.rand(n, generator=gen, device=dev) < 0.2).float()[:, None, None, None]
    texture = F.interpolate(torch.rand(n, 1, 5, 5, generator=gen, device=dev), size=x.shape[-2:], mode="bicubic",
                            align_corners=False).clamp(0, 1)
    x = torch.maximum(x, texture * u(0.05, 0.3, 1, 1, 1) * has_texture)
    x = x + torch.randn(x.shape, generator=gen, device=dev) * u(0.0, 0.05, 1, 1, 1)
    return x.clamp(0, 1)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, nargs="+", required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--deep", action="store_true", help="a fourth conv stage at 4 x 4 px")
    parser.add_argument("--out", type=Path, default=ROOT / "ocr" / "models")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    parts = [load_prepared(folder) for folder in args.train]
    x_train, y_train = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    x_val, y_val = load_prepared(args.val)
    counts = torch.bincount(y_train, minlength=len(CLASSES))
    print(f"prepared {len(y_train)} train / {len(y_val)} val crops in {time.perf_counter() - t0:.0f} s; "
          f"per class {dict(zip(CLASSES, counts.tolist()))}", flush=True)
    # Rare classes (the dash, some digits in leading boxes) are drawn more often: weight ~ 1/sqrt(count).
    sample_w = (counts.clamp(min=1).float() ** -0.5)[y_train]
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    cpu_gen = torch.Generator().manual_seed(args.seed)
    x_train, y_train = x_train.to(dev), y_train.to(dev)
    net = make_net(args.width, args.deep).to(dev)
    steps_per_epoch = len(y_train) // args.batch
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        net.train()
        order = torch.multinomial(sample_w, steps_per_epoch * args.batch, replacement=True, generator=cpu_gen).to(dev)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch: (step + 1) * args.batch]
            xb = augment(x_train[idx].float() / 255, gen)
            loss = F.cross_entropy(net(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        logits = predict_logits(net, x_val, dev)
        acc = float((logits.argmax(1) == y_val).float().mean())
        print(f"epoch {epoch + 1}: loss {total / steps_per_epoch:.4f}, val accuracy {acc:.5f}", flush=True)
    logits = predict_logits(net, x_val, dev)
    temperature = fit_temperature(logits, y_val)
    labels = y_val.numpy()
    ece_raw = expected_calibration_error(F.softmax(logits, 1).numpy(), labels)
    ece_cal = expected_calibration_error(F.softmax(logits / temperature, 1).numpy(), labels)
    pred = logits.argmax(1).numpy()
    acc = float((pred == labels).mean())
    blank_as_digit = float(((labels == BLANK) & (pred < 10)).sum() / max((labels == BLANK).sum(), 1))
    print(f"val accuracy {acc:.5f}; blank read as digit {blank_as_digit:.5f}; temperature {temperature:.3f}; "
          f"ECE {ece_raw:.4f} -> {ece_cal:.4f}", flush=True)
    export(net.cpu().eval(), args.out, {
        "temperature": temperature, "classes": list(CLASSES), "input_px": INPUT_PX,
        "trained": {"seed": args.seed, "epochs": args.epochs, "width": args.width, "deep": args.deep, "train_crops": len(y_train),
                    "val_crops": len(y_val), "val_accuracy": round(acc, 5), "ece_before": round(ece_raw, 4),
                    "ece_after": round(ece_cal, 4), "train": [str(p) for p in args.train], "val": str(args.val)}})


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    net.eval()
    return torch.cat([net(x[i: i + 8192].to(dev).float() / 255).cpu() for i in range(0, len(x), 8192)])


def export(net: nn.Module, out: Path, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 1, INPUT_PX, INPUT_PX), out / "digits.onnx", input_names=["crops"],
                      output_names=["logits"], dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, opset_version=17,
                      dynamo=False)
    (out / "digits.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {out / 'digits.onnx'} ({(out / 'digits.onnx').stat().st_size / 1024:.0f} KiB) and digits.json")


if __name__ == "__main__":
    main()

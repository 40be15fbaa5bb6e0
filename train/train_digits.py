"""Train the box classifier on crops from train/make_crops.py; export ONNX + calibration to ocr/reader/models/.

    python train/train_digits.py --train .traindata/crops --val .traindata/val --seed 1 --epochs 14
    python train/train_digits.py --train /tmp/d/train --calib /tmp/d/cvl-calib /tmp/d/femnist-calib \
        --arch v2 --steps 3000 --batch 1024 --smoothing 0.05 --seed 1

Crops go through `ocr.reader.digits.prepare`, the very cleaning the reader runs; the network then sees
them with light random geometry, contrast, noise, smudges and frame remnants (on the GPU when
there is one); `--arch v2` adds elastic distortion and stroke-width jitter there. Temperature
scaling calibrates the probabilities: on `--calib` (crops of writers never trained on, see
train/splits.py) when given, else on `--val`. The expected calibration error before and after,
and with `--calib` the confusion matrix of those writers (P(read j | true i)), are stored in
digits.json beside the provenance (`--provenance FILE`: a JSON object merged into "trained").
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


def make_net_v2(channels: tuple[int, int, int, int] = (16, 32, 48, 128)) -> nn.Sequential:
    """Four conv stages as `make_net(deep=True)` with a second conv at 8 x 8 px (where strokes become
    parts of digits): 4.7 M multiply-adds a box; 60 boxes in about 7 ms on one core, cleaning included."""
    a, b, c, d = channels
    return nn.Sequential(*conv(1, a), nn.MaxPool2d(2), *conv(a, b), nn.MaxPool2d(2), *conv(b, c), *conv(c, c),
                         nn.MaxPool2d(2), *conv(c, d), nn.Flatten(), nn.Linear(d * (INPUT_PX // 8) ** 2, 128),
                         nn.ReLU(inplace=True), nn.Dropout(0.25), nn.Linear(128, len(CLASSES)))


def augment(x: torch.Tensor, gen: torch.Generator, styles: bool = False) -> torch.Tensor:
    """Light camera-like variation of a float batch (n, 1, 32, 32) in [0, 1]; `styles` adds handwriting
    variation: elastic distortion (a smooth field of up to ~1 px) and stroke width (towards a 3 x 3 dilation
    or erosion)."""
    n, dev = len(x), x.device

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen, device=dev)

    angle, scale = u(-0.1, 0.1), u(0.9, 1.1)
    shear, shift = u(-0.1, 0.1), u(-0.08, 0.08, 2)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, (-torch.sin(angle) + shear) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    if styles:
        coarse = torch.randn(n, 2, 4, 4, generator=gen, device=dev) * u(0.0, 0.05, 1, 1, 1)
        grid = grid + F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    x = F.grid_sample(x, grid, align_corners=False)
    if styles:
        w = u(-0.6, 0.6, 1, 1, 1)
        dil, ero = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
        x = x + w.clamp(min=0) * (dil - x) + (-w).clamp(min=0) * (ero - x)
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


def confusion(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Counts (true i, read j) of the argmax, P(read j | true i), and the mean probability of j given i."""
    k = len(CLASSES)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (labels, probs.argmax(1)), 1)
    rows = np.maximum(counts.sum(1, keepdims=True), 1)
    mean_p = np.stack([probs[labels == i].mean(0) if (labels == i).any() else np.zeros(k) for i in range(k)])
    return {"classes": list(CLASSES), "counts": counts.tolist(),
            "read_given_true": np.round(counts / rows, 5).tolist(), "mean_probability_given_true": np.round(mean_p, 5).tolist()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, nargs="+", required=True)
    parser.add_argument("--val", type=Path, help="held-out crops of the training writers (other seeds)")
    parser.add_argument("--calib", type=Path, nargs="*", default=[],
                        help="crops of writers never trained on: temperature and confusion matrix are fitted here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--steps", type=int, default=0, help="optimizer steps in all (overrides --epochs)")
    parser.add_argument("--budget-s", type=float, default=0,
                        help="as many steps as fit in this many seconds (timed on a throwaway copy; printed)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--deep", action="store_true", help="a fourth conv stage at 4 x 4 px")
    parser.add_argument("--arch", choices=("v1", "v2"), default="v1",
                        help="v1: make_net(--width, --deep); v2: make_net_v2 with style augmentation")
    parser.add_argument("--smoothing", type=float, default=0.0, help="label smoothing")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--provenance", type=Path, help="JSON object merged into digits.json's 'trained'")
    parser.add_argument("--out", type=Path, default=ROOT / "ocr" / "reader" / "models")
    args = parser.parse_args()
    if not args.val and not args.calib:
        parser.error("give --val or --calib (calibration needs held-out crops)")
    return args


def load_sets(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor, torch.Tensor] | None]:
    """train, mon (watched each epoch), val and cal crops (cleaned as the reader cleans) with their labels."""
    t0 = time.perf_counter()
    parts = [load_prepared(folder) for folder in args.train]
    x_train, y_train = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    val = load_prepared(args.val) if args.val else None
    cal = [load_prepared(folder) for folder in args.calib]
    cal = (torch.cat([c[0] for c in cal]), torch.cat([c[1] for c in cal])) if cal else val
    counts = torch.bincount(y_train, minlength=len(CLASSES))
    print(f"prepared {len(y_train)} train / {len(val[1]) if val else 0} val / {len(cal[1])} calibration crops in "
          f"{time.perf_counter() - t0:.0f} s; per class {dict(zip(CLASSES, counts.tolist()))}", flush=True)
    if val is not None:
        mon = val
    else:  # watched each epoch: a slice of the training crops held back (the calibration writers stay unmeasured)
        k = min(4096, len(y_train) // 10)
        mon, x_train, y_train = (x_train[-k:], y_train[-k:]), x_train[:-k], y_train[:-k]
    return {"train": (x_train, y_train), "mon": mon, "val": val, "cal": cal}


def fit(net: nn.Module, train: tuple[torch.Tensor, torch.Tensor], mon: tuple[torch.Tensor, torch.Tensor],
        args: argparse.Namespace, dev: torch.device) -> tuple[int, int]:
    """Trains `net` in place; (epochs, steps) run."""
    x_train, y_train = train[0].to(dev), train[1].to(dev)
    counts = torch.bincount(train[1], minlength=len(CLASSES))
    # Rare classes (the dash, some digits in leading boxes) are drawn more often: weight ~ 1/sqrt(count).
    sample_w = (counts.clamp(min=1).float() ** -0.5)[train[1]]
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    cpu_gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = len(y_train) // args.batch
    total_steps = args.steps or args.epochs * steps_per_epoch
    if args.budget_s:
        total_steps = steps_in(args.budget_s, args.arch, args.width, args.deep, x_train, y_train, args.batch, dev)
        print(f"--budget-s {args.budget_s:g}: {total_steps} steps (reproduce with --steps {total_steps})", flush=True)
    epochs = -(-total_steps // steps_per_epoch)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps)
    autocast = torch.autocast("cuda", torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    done, t_train = 0, time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.multinomial(sample_w, steps_per_epoch * args.batch, replacement=True, generator=cpu_gen).to(dev)
        total, steps = torch.zeros((), device=dev), min(steps_per_epoch, total_steps - done)
        for step in range(steps):
            idx = order[step * args.batch: (step + 1) * args.batch]
            xb = augment(x_train[idx].float() / 255, gen, args.arch == "v2")
            with autocast:
                loss = F.cross_entropy(net(xb).float(), y_train[idx], label_smoothing=args.smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
        done += steps
        acc = float((predict_logits(net, mon[0], dev).argmax(1) == mon[1]).float().mean())
        print(f"epoch {epoch + 1} ({done}/{total_steps} steps, {time.perf_counter() - t_train:.0f} s): "
              f"loss {float(total) / steps:.4f}, {'val' if args.val else 'held-back train'} accuracy {acc:.5f}",
              flush=True)
    return epochs, total_steps


def calibrate(net: nn.Module, cal: tuple[torch.Tensor, torch.Tensor], args: argparse.Namespace,
              dev: torch.device) -> dict:
    """digits.json's content but `trained`'s training part: temperature fitted on `cal`, ECE before and after, and
    (on calibration writers) the confusions."""
    logits = predict_logits(net, cal[0], dev)
    temperature = fit_temperature(logits, cal[1])
    labels = cal[1].numpy()
    ece_raw = expected_calibration_error(F.softmax(logits, 1).numpy(), labels)
    ece_cal = expected_calibration_error(F.softmax(logits / temperature, 1).numpy(), labels)
    pred = logits.argmax(1).numpy()
    acc = float((pred == labels).mean())
    blank_as_digit = float(((labels == BLANK) & (pred < 10)).sum() / max((labels == BLANK).sum(), 1))
    print(f"{'calibration writers' if args.calib else 'val'}: accuracy {acc:.5f}; blank read as digit "
          f"{blank_as_digit:.5f}; temperature {temperature:.3f}; ECE {ece_raw:.4f} -> {ece_cal:.4f}", flush=True)
    info = {"temperature": temperature, "classes": list(CLASSES), "input_px": INPUT_PX, "trained": {
        "calibrated_on": [str(p) for p in args.calib] or str(args.val), "calibration_crops": len(labels),
        "calibration_accuracy" if args.calib else "val_accuracy": round(acc, 5),
        "ece_before": round(ece_raw, 4), "ece_after": round(ece_cal, 4)}}
    if args.calib:
        info["confusion_calibration_writers"] = confusion(F.softmax(logits / temperature, 1).numpy(), labels)
    return info


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sets = load_sets(args)
    net = (make_net_v2() if args.arch == "v2" else make_net(args.width, args.deep)).to(dev)
    epochs, steps = fit(net, sets["train"], sets["mon"], args, dev)
    info = calibrate(net, sets["cal"], args, dev)
    trained = {"seed": args.seed, "epochs": epochs, "steps": steps,
               "arch": args.arch, "width": args.width, "deep": args.deep, "batch": args.batch, "lr": args.lr,
               "smoothing": args.smoothing, "train_crops": len(sets["train"][1]), "train": [str(p) for p in args.train]}
    if args.val:
        trained.update(val=str(args.val), val_crops=len(sets["val"][1]))
    info["trained"] = {**trained, **info["trained"]}
    if args.provenance:
        info["trained"].update(json.loads(args.provenance.read_text()))
    export(net.cpu().eval(), args.out, info)


def steps_in(budget_s: float, arch: str, width: int, deep: bool, x: torch.Tensor, y: torch.Tensor, batch: int,
             dev: torch.device) -> int:
    """How many training steps fit in `budget_s`, timed on a throwaway network (its own random streams)."""
    net = (make_net_v2() if arch == "v2" else make_net(width, deep)).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    gen = torch.Generator(device=dev).manual_seed(12345)
    autocast = torch.autocast("cuda", torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    x, y = x.to(dev), y.to(dev)

    def step() -> None:
        idx = torch.randint(0, len(y), (batch,), generator=gen, device=dev)
        with autocast:
            loss = F.cross_entropy(net(augment(x[idx].float() / 255, gen, arch == "v2")).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(30):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return max(1, int(budget_s / ((time.perf_counter() - t) / 30)))


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

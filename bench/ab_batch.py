"""`formc batch` of two source trees on the same photos, interleaved, side by side.

    python bench/ab_batch.py OLD_TREE NEW_TREE --data DIR [--rounds 3] [--workers N] [--keep OUT_DIR]

Each round runs OLD then NEW (alternating which goes first) as `python -m cli batch DATA` with
that tree on PYTHONPATH, into a fresh JSONL, and reads the photos/s the batch prints. Machines here
are noisy, so the rounds are interleaved and the medians compared. `--keep` keeps the last round's
JSONL of each (`old.jsonl`, `new.jsonl`) for bench/compare_results.py.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RATE = re.compile(r"= ([0-9.]+) photos/s")


def batch_rate(tree: Path, data: Path, out: Path, workers: int) -> float:
    """Photos/s of one `formc batch` of `tree` over `data` into `out` (removed first)."""
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = subprocess.run([sys.executable, "-m", "cli", "batch", str(data), "--out", str(out), "--workers", str(workers)],
                         cwd=tree, env=env, capture_output=True, text=True)
    found = RATE.findall(run.stderr.replace("\n", " "))
    if not found:
        raise SystemExit(f"{tree}: no rate in the batch's output (exit {run.returncode}):\n{run.stderr[-2000:]}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {name: (args.keep or Path(tmp)) / f"{name}.jsonl" for name in rates}
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for name in order:
                rates[name].append(batch_rate(getattr(args, name).resolve(), args.data, outs[name], args.workers))
            print(f"round {r + 1}: old {rates['old'][-1]:.2f}, new {rates['new'][-1]:.2f} photos/s", flush=True)
    old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
    print("tree | photos/s each round | median")
    for name in rates:
        print(f"{name} {getattr(args, name)} | {', '.join(f'{x:.2f}' for x in rates[name])} | "
              f"{statistics.median(rates[name]):.2f}")
    print(f"new / old (medians): {new / old:.3f}")


if __name__ == "__main__":
    main()

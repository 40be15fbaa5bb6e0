"""How long `formc synth` takes for N phone submissions (goal: 100 in under 2 minutes on 2 cores).

    .venv/bin/python bench/synth_speed.py [--count 100] [--workers 2] [--template kwk-gubernur-3]

Runs the real command in a fresh process (handwriting loading included) and prints wall time,
photos per second and the size of what it wrote, with JPEG-decoding time of the same photos
measured in the same run as a yardstick.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--template", default="kwk-gubernur-3")
    parser.add_argument("--profile", default="phone")
    args = parser.parse_args()
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(cli), "synth", args.template, "--count", str(args.count), "--out", out,
                        "--seed", "1", "--profile", args.profile, "--workers", str(args.workers)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        photos = sorted(Path(out).rglob("page-*.jpg"))
        size_mb = sum(p.stat().st_size for p in photos) / 1e6
        start = time.perf_counter()
        pixels = 0
        for photo in photos:
            pixels += cv2.imread(str(photo), cv2.IMREAD_COLOR).size // 3
        decode = time.perf_counter() - start
    print(f"formc synth {args.template} --profile {args.profile}: {args.count} submissions, {len(photos)} photos, "
          f"{args.workers} workers on {os.cpu_count()} cores")
    print(f"  wall time          {wall:8.1f} s   (goal for 100 phone submissions on 2 cores: < 120 s)")
    print(f"  photos per second  {len(photos) / wall:8.2f}")
    print(f"  mean photo         {pixels / len(photos) / 1e6:8.1f} MP, {size_mb / len(photos):.2f} MB")
    print(f"  decoding them all  {decode:8.1f} s on 1 core  (synth costs {wall * args.workers / decode:.1f}x the "
          f"core-seconds of decoding its own output)")


if __name__ == "__main__":
    main()

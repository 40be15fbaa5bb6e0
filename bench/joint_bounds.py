"""The bounded joint decoding against the exact search, on the same reads: time, and every field's value, status
and margin.

    python bench/joint_bounds.py --reads /tmp/strangers.pkl [--count 200]      # bench/strangers_bench.py --reads
    python bench/joint_bounds.py --reads /tmp/decode_reads.pkl --count 200     # bench/decode_bench.py --reads

Bounded is what the reader runs (`ocr.reader.verdict.decode`): runner-ups searched only as far as the policy's
largest margin, the work stopped at a budget of rule states. Exact has no budget (`bounded=False`), with the same
margin reach (no status depends on a margin beyond it). A field must have the exact search's value, status and
margin, except where the bound cut: there its status may only be less confident (review where the exact search
says ok or corrected), never more. Prints mean and max ms a submission and a photo for both, one process, the same
reads, side by side.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.reader.verdict import Policy, decode, judge  # noqa: E402
from ocr.templates.catalog import get_template  # noqa: E402

CONFIDENT = ("ok", "corrected")


def compare(name: str, results: list, policy: Policy) -> None:
    ms = {"bounded": [], "exact": []}
    photos = fields = same = less_confident = 0
    cut_submissions: set[str] = set()
    more_confident: list[str] = []
    for truth, read in results:
        if not read.fields:
            continue
        template = get_template(truth["template"])
        photos, fields = photos + len(truth["pages"]), fields + len(read.fields)
        runs = {}
        for label in ms:
            start = time.perf_counter()
            weighed, joint = decode(template, read.fields, policy, bounded=label == "bounded")
            ms[label].append(1000 * (time.perf_counter() - start))
            runs[label] = joint, judge(template, read.fields, joint, policy, weighed)
        (bj, bv), (ej, ev) = runs["bounded"], runs["exact"]
        for f, b in bv.fields.items():
            e = ev.fields[f]
            if (b.value, b.status) == (e.value, e.status) and abs(bj.margins[f] - ej.margins[f]) < 1e-9:
                same += 1
                continue
            cut_submissions.add(truth["submission"])
            if b.status in CONFIDENT and (e.status not in CONFIDENT or b.value != e.value):
                more_confident.append(f"{truth['submission']} {f}: bounded {b.value} {b.status} {bj.margins[f]:.3f}, "
                                      f"exact {e.value} {e.status} {ej.margins[f]:.3f}")
            less_confident += b.status not in CONFIDENT and e.status in CONFIDENT
    print(f"\n{name}: {len(ms['bounded'])} submissions, {photos} photos, {fields} fields")
    for label, t in ms.items():
        print(f"  {label}: mean {sum(t) / len(t):.1f} ms, max {max(t):.1f} ms a submission; "
              f"{sum(t) / photos:.2f} ms a photo")
    print(f"  fields identical (value, status, margin): {same} of {fields}; the bound cut in {len(cut_submissions)} "
          f"submissions: {less_confident} fields to review that the exact search passes; more confident than the "
          f"exact search: {len(more_confident)}")
    for line in more_confident[:20]:
        print("   ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=Path, required=True, help="a --reads pickle of strangers_bench or decode_bench")
    parser.add_argument("--count", type=int, default=200, help="submissions per set")
    args = parser.parse_args()
    reads = pickle.loads(args.reads.read_bytes())
    sets = reads if isinstance(reads, dict) else {args.reads.stem: reads}
    gc.freeze()  # the reads held here are a heap no reader has: collecting it would be timed as decoding
    for name, results in sets.items():
        compare(name, results[:args.count], Policy())


if __name__ == "__main__":
    main()

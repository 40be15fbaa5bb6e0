"""The bounded joint decoding against the exact search, on the same reads: time, and every field's value, status
and margin.

    python bench/joint_bounds.py --reads /tmp/strangers.pkl [--count 200]      # bench/strangers_bench.py --reads
    python bench/joint_bounds.py --reads /tmp/decode_reads.pkl --count 200     # bench/decode_bench.py --reads

Bounded is what the reader runs (`ocr.reader.verdict.decode`): runner-ups searched only as far as the policy's
largest margin, and a group of fields that its own readings break by more than `max_fix_nats` (inconsistent as
written, reported as read) not searched for its consistent best, its fields left at margin 0. Exact searches every
group to its best (`bounded=False`), with the same margin reach (no status depends on a margin beyond it). A field
must have the exact search's value, status and margin, except where the bound cut its group: there its status may
only be less confident (review where the exact one says ok), never more. Prints mean and max ms a submission and a
photo for both, one process, the same reads, side by side.
"""

from __future__ import annotations

import argparse
import gc
import math
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
    photos = same = cut_groups = cut_same = less_confident = 0
    wrong: list[str] = []
    for truth, read in results:
        if not read.fields:
            continue
        template = get_template(truth["template"])
        photos += len(truth["pages"])
        runs = {}
        for label in ms:
            start = time.perf_counter()
            weighed, joint = decode(template, read.fields, policy, bounded=label == "bounded")
            ms[label].append(1000 * (time.perf_counter() - start))
            runs[label] = joint, judge(template, read.fields, joint, policy, weighed)
        (bj, bv), (ej, ev) = runs["bounded"], runs["exact"]
        cut = bj.consistent.log_p == -math.inf
        cut_groups += cut
        for f, b in bv.fields.items():
            e = ev.fields[f]
            if (b.value, b.status) == (e.value, e.status) and abs(bj.margins[f] - ej.margins[f]) < 1e-9:
                same += 1
            elif cut and bj.margins[f] == 0.0 and b.value == e.value and b.status not in CONFIDENT:
                less_confident += e.status in CONFIDENT
                cut_same += b.status == e.status
            else:
                wrong.append(f"{truth['submission']} {f}: bounded {b.value} {b.status} {bj.margins[f]:.3f}, "
                             f"exact {e.value} {e.status} {ej.margins[f]:.3f}")
    fields = sum(len(r.fields) for _, r in results if r.fields)
    print(f"\n{name}: {len(ms['bounded'])} submissions, {photos} photos, {fields} fields")
    for label, t in ms.items():
        print(f"  {label}: mean {sum(t) / len(t):.1f} ms, max {max(t):.1f} ms a submission; "
              f"{sum(t) / photos:.2f} ms a photo")
    print(f"  fields identical (value, status, margin): {same} of {fields}; in the {cut_groups} submissions with a group "
          f"broken beyond {policy.max_fix_nats:g} nats as read (not searched, margin 0): {cut_same} fields with the "
          f"exact value and status, {less_confident} review where the exact search says ok; "
          f"different otherwise: {len(wrong)}")
    for line in wrong[:20]:
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

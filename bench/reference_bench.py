"""Reference-image templates: which feature detector aligns the older forms best, and how precisely.

    FORMC_REFERENCE_IMAGES=../shared/real .venv/bin/python bench/reference_bench.py [--real ../shared/real]

For SIFT and ORB at two working sizes side by side, in one run:
- real: every photo in ../shared/real aligned against the reference-image templates only: per form, how many
  aligned (the two scans the boxes were measured on are counted apart), how many refused, and how many photos of
  *other* forms were wrongly taken for one (must be 0); median ms per photo (match + refine);
- synthetic: each reference scan warped by known homographies (turned, shrunk, perspective, noise): mean and max
  box-corner error in mm against the truth, and how many aligned.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ocr.reader.align import AlignSettings, PageAlignment, align_page
from ocr.reader.decode import decode_photo
from ocr.reader.reference import MatchSettings
from ocr.templates.catalog import reference_files
from ocr.templates.reference_form import load_reference_file

FORM_OF_TEMPLATE = {"c1-ppwp-2019-lembar-1": "c1ppwp2019-l1", "c1-ppwp-2019-lembar-2": "c1ppwp2019-l2"}


def random_homography(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Scan px -> photo px: any turn, 0.6-1.4x, corners pulled by up to 8 % (perspective), in a frame with margin."""
    angle = rng.uniform(0, 2 * np.pi)
    scale = rng.uniform(0.6, 1.4)
    corners = np.float32([(0, 0), (width, 0), (width, height), (0, height)])
    pulled = corners + rng.uniform(-0.08, 0.08, (4, 2)).astype(np.float32) * [width, height]
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    placed = (pulled - corners.mean(0)) @ rot.T * scale
    placed -= placed.min(0) - 60
    size = tuple(int(v) + 60 for v in placed.max(0))
    return cv2.getPerspectiveTransform(corners, placed.astype(np.float32)), size


def synthetic(templates, settings: AlignSettings, count: int, seed: int) -> tuple[list[float], int, int, list[float]]:
    rng = np.random.default_rng(seed)
    errors, aligned, total, times = [], 0, 0, []
    for template in templates:
        for page in template.pages:
            scan = cv2.imread(str(page.reference.path), cv2.IMREAD_GRAYSCALE)
            ppm = page.reference.px_per_mm
            for _ in range(count):
                h, size = random_homography(rng, scan.shape[1], scan.shape[0])
                gray = cv2.warpPerspective(scan, h, size, borderValue=int(rng.integers(40, 160)))
                gray = np.clip(gray + rng.normal(0, 5, gray.shape), 0, 255).astype(np.uint8)
                photo = decode_photo(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(), "synthetic.jpg")
                start = time.perf_counter()
                result = align_page(photo, (template,), settings=settings)
                times.append(time.perf_counter() - start)
                total += 1
                if not isinstance(result, PageAlignment):
                    continue
                aligned += 1
                for f in page.fields:
                    truth_mm = np.array([[(x, y), (x + w, y), (x + w, y + hh), (x, y + hh)] for x, y, w, hh in f.boxes_mm])
                    truth = cv2.perspectiveTransform(truth_mm.reshape(1, -1, 2) * ppm, h)[0]
                    found = result.box_corners(f.id).reshape(-1, 2)
                    local = np.linalg.norm(truth[1::4] - truth[0::4], axis=1).repeat(4) / np.repeat([b[2] for b in f.boxes_mm], 4)
                    errors.extend(np.linalg.norm(found - truth, axis=1) / local)
    return errors, aligned, total, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real")
    parser.add_argument("--synthetic", type=int, default=8, help="warps per reference scan")
    parser.add_argument("--configs", nargs="+", default=["sift:800", "sift:1200", "orb:800", "orb:1200"],
                        help="detector:working long side px")
    args = parser.parse_args()
    templates = tuple(load_reference_file(p) for p in reference_files())
    references = {p.reference.path.name for t in templates for p in t.pages}
    labels = json.loads((args.real / "labels.json").read_text())
    photos = [(name, (args.real / name).read_bytes()) for name in sorted(labels)]
    print(f"{len(templates)} reference templates; {len(photos)} real photos; {args.synthetic} warps per scan\n")
    header = f"{'detector':8s} {'form':16s} {'aligned':>8s} {'refused':>8s} {'ref scan':>8s}"
    for config in args.configs:
        detector, long_side = config.split(":")
        settings = replace(AlignSettings(), match=MatchSettings(detector=detector, work_long_side_px=int(long_side)))
        detector = config
        rows: dict[str, list[int]] = {}
        wrong, times = [], []
        for name, data in photos:
            photo = decode_photo(data, name)
            start = time.perf_counter()
            result = align_page(photo, templates, settings=settings)
            times.append(time.perf_counter() - start)
            form = labels[name]["form"]
            if isinstance(result, PageAlignment) and FORM_OF_TEMPLATE[result.template.id] != form:
                wrong.append(name)
            if form not in FORM_OF_TEMPLATE.values():
                continue
            row = rows.setdefault(form, [0, 0, 0])
            row[2 if name in references else (0 if isinstance(result, PageAlignment) else 1)] += 1
        print(header)
        for form, (ok, refused, ref) in sorted(rows.items()):
            print(f"{detector:8s} {form:16s} {ok:8d} {refused:8d} {ref:8d}")
        others = sum(labels[n]["form"] not in FORM_OF_TEMPLATE.values() for n, _ in photos)
        print(f"{detector:8s} other forms taken for a reference form: {len(wrong)} of {others} {wrong}")
        print(f"{detector:8s} median {np.median(times) * 1000:.0f} ms per real photo (match + refine)")
        errors, aligned, total, synth_times = synthetic(templates, settings, args.synthetic, seed=11)
        print(f"{detector:8s} synthetic warps: {aligned}/{total} aligned; box-corner error mean {np.mean(errors):.2f} mm, "
              f"max {np.max(errors):.2f} mm; median {np.median(synth_times) * 1000:.0f} ms\n")


if __name__ == "__main__":
    main()

"""Align the real photos in ../shared/real and draw what was found.

    FORMC_REFERENCE_IMAGES=../shared/real .venv/bin/python bench/real_photos.py [--real ../shared/real] [--out DIR]

With FORMC_REFERENCE_IMAGES=../shared/real the reference-image templates (C1-PPWP 2019) take part.
Prints one line per photo (aligned with template, page and quality, or the refusal reason) and,
for each aligned photo, writes <out>/real-<name>.png: the page rectified through the homography
with every refined box outlined (green: placed on its printed lines, orange: flagged), and a strip
of the cut boxes of the totals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ocr.reader.align import align_page, cut_boxes
from ocr.reader.decode import decode_photo
from ocr.reader.refine import big_box_fields
from ocr.templates.catalog import load_templates

PX_PER_MM = 2.0


def draw(photo, alignment, out: Path) -> None:
    template, page = alignment.template, alignment.template.page(alignment.page_number)
    scale = PX_PER_MM * (3 if template.by_reference else 1)  # A4 scans: 6 px/mm; 2024 planos: 2 px/mm
    width, height = (int(v * scale) for v in template.page_size_mm)
    to_page = np.diag([scale, scale, 1.0]) @ np.linalg.inv(alignment.page_homography)
    rectified = cv2.cvtColor(cv2.warpPerspective(photo.gray, to_page, (width, height)), cv2.COLOR_GRAY2BGR)
    for fit in alignment.boxes:
        corners = np.array(fit.corners_mm) * scale
        cv2.polylines(rectified, [np.round(corners).astype(np.int32)], True, (0, 170, 0) if fit.measured else (0, 140, 255), 2)
    boxes = [f for f in page.fields if f.id in big_box_fields(page)]
    xs = [v for f in boxes for b in f.boxes_mm for v in (b[0], b[0] + b[2])]
    ys = [v for f in boxes for b in f.boxes_mm for v in (b[1], b[1] + b[3])]
    left = min(xs) - (40 if template.by_reference else 200)
    crop = rectified[max(0, int((min(ys) - 25) * scale)):int((max(ys) + 25) * scale),
                     max(0, int(left * scale)):int((max(xs) + 10) * scale)]
    strip = np.hstack([np.pad(c, 2, constant_values=255) for f in boxes[:12] for c in cut_boxes(photo.gray, alignment, f.id, 64)])
    strip = cv2.cvtColor(strip, cv2.COLOR_GRAY2BGR)
    ratio = crop.shape[1] / strip.shape[1]
    strip = cv2.resize(strip, (crop.shape[1], max(1, int(strip.shape[0] * ratio))))
    cv2.imwrite(str(out), np.vstack([crop, strip]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real")
    parser.add_argument("--out", type=Path, default=Path("out/real"))
    args = parser.parse_args()
    templates = tuple(load_templates().values())
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path in sorted(p for p in args.real.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
        photo = decode_photo(path.read_bytes(), path.name)
        result = align_page(photo, templates) if photo else photo
        if result:
            q = result.quality
            status = (f"aligned  {result.template.id} page {result.page_number} by {result.identified_by}; residual "
                      f"{q.residual_mm:.1f} mm, sharpness {q.sharpness:.2f}, boxes seen {q.boxes_seen:.0%}")
            draw(photo, result, args.out / f"real-{path.stem}.png")
            counts["aligned"] = counts.get("aligned", 0) + 1
        else:
            status = f"refused  {result.code}"
            counts[str(result.code)] = counts.get(str(result.code), 0) + 1
        print(f"{path.name:32s} {status}")
    print("; ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()

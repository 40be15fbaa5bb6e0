"""Check the PPWP 2024 template against the official plano: box offsets and a visual overlay.

    .venv/bin/python bench/ppwp_official.py [--shared ../shared] [--out docs/img]

Prints, per page, the distance between our box centres and (a) the boxes of the official PDF's
vector drawing, (b) SIREKAP's own box coordinates (ppwp-2024-box-coordinates.json, a 2986 x 4783
px frame whose corners are the top-left corners of the four checker blocks). Writes an overlay of
our rendering on plano_ppwp-<n>.png: black where both print, cyan official only, red ours only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from ocr.templates.catalog import get_template
from ocr.templates.model import FormTemplate
from ocr.templates.render import render_page

# SIREKAP's field names -> ours (FORM_SPEC.md ids).
SIREKAP_NAMES = {"pemilih_dpt": "dpt", "pemilih_disabilitas": "disabilitas", "surat_dikembalikan": "surat_rusak",
                 "surat_tidak_digunakan": "surat_sisa", "jumlah_suara_sah": "suara_sah",
                 "jumlah_suara_tidak_sah": "suara_tidak_sah", "jumlah_seluruh_suara": "suara_total"}


def _our_id(sirekap_id: str) -> str:
    for theirs, ours in SIREKAP_NAMES.items():
        if sirekap_id.startswith(theirs):
            return sirekap_id.replace(theirs, ours, 1)
    return sirekap_id


def _centre(box_mm) -> np.ndarray:
    x, y, w, h = box_mm
    return np.array([x + w / 2, y + h / 2])


def sirekap_offsets(template: FormTemplate, coordinates: dict) -> dict[int, np.ndarray]:
    """Per page, (N, 2) offsets in mm (x, y) of SIREKAP's box centres from ours."""
    centres = template.markers.centres_mm()
    origin = np.array(template.markers.blocks_mm[0])
    out = {}
    for number, page in enumerate(coordinates["pages"], start=1):
        frame_w, frame_h = page["frame"]
        px_per_mm = np.array([frame_w / (centres[1][0] - centres[0][0]), frame_h / (centres[3][1] - centres[0][1])])
        side = page["box_size"][0]
        offsets = []
        for sirekap_id, boxes in page["fields"].items():
            field = template.fields[_our_id(sirekap_id)]
            for (x, y), box_mm in zip(boxes, field.boxes_mm):
                offsets.append((np.array([x, y]) + side / 2) / px_per_mm + origin - _centre(box_mm))
        out[number] = np.array(offsets)
    return out


def pdf_offsets(template: FormTemplate, pdf: Path) -> dict[int, np.ndarray]:
    """Per page, (N, 2) offsets in mm of the nearest official square box (vector drawing) from each of ours."""
    import pymupdf

    mm_per_pt = 25.4 / 72
    out = {}
    for number, page in enumerate(pymupdf.open(pdf), start=1):
        official = np.array([((r.x0 + r.x1) / 2 * mm_per_pt, (r.y0 + r.y1) / 2 * mm_per_pt)
                             for r in (d["rect"] for d in page.get_drawings() if d["type"] == "s")
                             if 15 < r.width * mm_per_pt < 25 and abs(r.width - r.height) * mm_per_pt < 0.1])
        ours = [_centre(b) for f in template.page(number).fields for b in f.boxes_mm if b[2] >= 15]
        out[number] = np.array([official[np.argmin(np.linalg.norm(official - c, axis=1))] - c for c in ours])
    return out


def overlay(template: FormTemplate, plano_png: Path, page: int, out: Path) -> None:
    official = cv2.imread(str(plano_png), cv2.IMREAD_GRAYSCALE)
    height, width = official.shape
    ours = render_page(template, page, width / template.page_size_mm[0] * 25.4)
    ours = cv2.resize(ours, (width, height), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), cv2.merge([ours, ours, official]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    forms = args.shared / "forms"
    template = get_template("ppwp-2024")
    sirekap = sirekap_offsets(template, json.loads((forms / "ppwp-2024-box-coordinates.json").read_text()))
    pdf = pdf_offsets(template, forms / "C.HASIL-PPWP-2024-plano.pdf")
    print("page  boxes  vs official PDF: max |d| mm   vs SIREKAP: mean dx, dy mm   max |d| mm")
    for number in (1, 2, 3):
        s, p = sirekap[number], pdf[number]
        print(f"{number:4d}  {len(p):5d}  {np.linalg.norm(p, axis=1).max():27.2f}   "
              f"{s[:, 0].mean():+8.2f} {s[:, 1].mean():+6.2f} ({len(s)} boxes)  {np.linalg.norm(s, axis=1).max():10.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    for number in (1, 2, 3):
        path = args.out / f"ppwp-overlay-{number}.png"
        overlay(template, forms / f"plano_ppwp-{number}.png", number, path)
        print(f"overlay: {path}")


if __name__ == "__main__":
    main()

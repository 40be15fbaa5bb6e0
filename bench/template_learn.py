"""`formc template learn` against the shipped marker templates: a render and two phone photos (flat, bent) of every page.

    .venv/bin/python bench/template_learn.py [--dpi 127] [--seed 18] [--bend-mm 4] [--labels] [--templates ID ...]

Each page of the 19 marker templates is rendered blank (`render_page`, 5 px/mm by default) and photographed twice
(ocr/synth/camera.py, profile phone, seed `--seed` + the page's index): flat, and with the paper bent (`--bend-mm`).
Learn is given no template data: the render's resolution (a scan's dpi) or, for a photo, the side of a marker square
as a person measures it on the paper (the photo's only scale; the photo's boxes are compared through the markers'
homography, which that length does not change). A true box is found when a learned field's box has all four corners
within 1 mm of it (render: page mm; photo: learned page mm through the homography of the learned marker centres onto
the true ones). A field is right when one learned field's boxes are exactly its boxes, in order. Extra: learned
field boxes that are no true box (printed box rows the template does not read, such as the date boxes). `--labels`
also reads the labels with Tesseract and counts the fields whose proposed id is the template's. `--bend-mm` sets the
bent photo's largest paper bend (the phone profile's is up to 4 mm, which no homography of the markers follows;
learn undoes it from the straightness of the page's long printed lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cv2
import numpy as np

from ocr.learn.learn import LearnedPage, LearnSettings, learn_page
from ocr.reader.decode import decode_photo
from ocr.reader.geometry import map_points
from ocr.synth.camera import PROFILES, photograph, plan_photo
from ocr.templates.catalog import load_templates
from ocr.templates.model import FormTemplate, rect_corners
from ocr.templates.render import px_per_mm, render_page

GOAL_BOXES, GOAL_FIELDS = 0.99, 0.98


def score(learned: LearnedPage, template: FormTemplate, page_number: int, to_true_mm: np.ndarray) -> dict:
    """Boxes found within 1 mm, extra boxes, fields right and ids right; learned mm mapped by `to_true_mm` (3, 3)."""
    fields = [(f.id, np.array([map_points(to_true_mm, rect_corners(b)) for b in f.boxes_mm])) for f in learned.fields]
    learned_boxes = np.concatenate([corners for _, corners in fields])  # (n, 4, 2)
    true_fields = template.page(page_number).fields
    true_boxes = np.array([rect_corners(b) for f in true_fields for b in f.boxes_mm])
    offset = np.linalg.norm(learned_boxes[:, None] - true_boxes[None], axis=3).max(axis=2)  # (learned, true) mm
    right = ids = 0
    for field in true_fields:
        corners = np.array([rect_corners(b) for b in field.boxes_mm])
        match = [fid for fid, got in fields
                 if got.shape == corners.shape and np.linalg.norm(got - corners, axis=2).max() <= 1.0]
        right += bool(match)
        ids += field.id in match
    return {"true": len(true_boxes), "found": int((offset.min(axis=0) <= 1.0).sum()),
            "extra": int((offset.min(axis=1) > 1.0).sum()), "fields": len(true_fields), "right": right, "ids": ids,
            "worst": float(offset.min(axis=0).max())}


def photo_of(template: FormTemplate, page_number: int, dpi: float, seed: int, bend_mm: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    profile = dataclasses.replace(PROFILES["phone"], bend_mm=bend_mm)
    plan = plan_photo(profile, template.page_size_mm, rng)
    scale = px_per_mm(dpi)
    page = cv2.cvtColor(render_page(template, page_number, dpi), cv2.COLOR_GRAY2BGR)
    jpeg, _ = photograph(page, scale, template.page_size_mm, plan, profile, rng)
    return decode_photo(jpeg).gray


def run(template: FormTemplate, page_number: int, source: str, dpi: float, seed: int, bend_mm: float,
        labels: bool) -> dict:
    if source == "render":
        image = render_page(template, page_number, dpi)
        settings = LearnSettings(px_per_mm=px_per_mm(dpi), read_labels=labels)
    else:
        image = photo_of(template, page_number, dpi, seed, bend_mm if source == "bent" else 0.0)
        settings = LearnSettings(marker_square_mm=template.markers.square_mm, read_labels=labels)
    start = time.perf_counter()
    learned = learn_page(image, settings)
    seconds = time.perf_counter() - start
    true = template.page(page_number).fields
    if not learned:
        return {"true": sum(len(f.boxes_mm) for f in true), "found": 0, "extra": 0, "fields": len(true), "right": 0,
                "ids": 0, "worst": np.nan, "seconds": seconds, "why": learned.message}
    if source == "render":
        to_true = np.eye(3)
    else:
        learned_mm = np.array(learned.frame.markers.centres_mm(), np.float32)
        to_true = cv2.getPerspectiveTransform(learned_mm, np.array(template.markers.centres_mm(), np.float32))
    return score(learned, template, page_number, to_true) | {"seconds": seconds, "why": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dpi", type=float, default=127.0, help="render resolution (127 dpi = 5 px/mm)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--bend-mm", type=float, default=PROFILES["phone"].bend_mm, help="the photo's largest bend")
    parser.add_argument("--labels", action="store_true", help="read labels with Tesseract and score the ids")
    parser.add_argument("--templates", nargs="*", help="template ids (default: every marker template)")
    args = parser.parse_args()
    templates = [t for t in load_templates().values() if t.markers is not None
                 and (not args.templates or t.id in args.templates)]
    sources = ("render", "flat", "bent")  # the render; phone photos of the page flat and bent
    totals = {s: dict.fromkeys(("true", "found", "extra", "fields", "right", "ids"), 0) for s in sources}
    print(f"{'template':24s} page source  boxes found<=1mm extra  fields right{'  ids' if args.labels else ''}"
          f"  worst mm  learn s")
    index = 0
    for template in templates:
        for page in template.pages:
            for source in sources:
                r = run(template, page.number, source, args.dpi, args.seed + index, args.bend_mm, args.labels)
                for key in totals[source]:
                    totals[source][key] += r[key]
                ids = f" {r['ids']:4d}" if args.labels else ""
                print(f"{template.id:24s} {page.number:4d} {source:6s} {r['true']:6d} {r['found']:11d} {r['extra']:5d}"
                      f" {r['fields']:7d} {r['right']:5d}{ids} {r['worst']:9.2f} {r['seconds']:8.2f}  {r['why']}")
            index += 1
    print()
    for source, t in totals.items():
        boxes, fields = t["found"] / t["true"], t["right"] / t["fields"]
        ids = f", ids right {t['ids'] / t['fields']:.1%}" if args.labels else ""
        print(f"{source:6s}: boxes {t['found']}/{t['true']} = {boxes:.2%} (goal >= {GOAL_BOXES:.0%}: "
              f"{'met' if boxes >= GOAL_BOXES else 'NOT met'}), extra {t['extra']}; fields {t['right']}/{t['fields']} = "
              f"{fields:.2%} (goal >= {GOAL_FIELDS:.0%}: {'met' if fields >= GOAL_FIELDS else 'NOT met'}){ids}")


if __name__ == "__main__":
    main()

"""A learned page written as a template file the shipped loaders accept, and the overlay picture to check it by eye.

With markers and a page tag the file is a family file (`ocr.templates.file.TemplateFamily`: one variant, a layout per
learned page, the pages not given empty); without them a reference-image file (`ReferenceFormSpec`) on the scan
itself, copied beside the file when it is elsewhere. Rules are written `proposed: true` unless a person accepted them
(the web app's template editor). The file is loaded back through the same loader before this returns, so what it
writes validates.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

from ocr.learn.learn import LearnedPage
from ocr.learn.page import LEARN_PX_PER_MM, NotLearned
from ocr.reader.geometry import map_points
from ocr.templates.catalog import load_template_file
from ocr.templates.checks import TemplateError
from ocr.templates.model import FormTemplate, RectMM, rect_corners

HEADER = """\
# Proposed by `formc template learn` from {scan}: check the boxes on the overlay picture, the field ids and
# labels (read with Tesseract; row_NN_col_M where no known label was read), and accept each proposed rule by
# deleting its `proposed: true` (proposed rules are never checked). Units: page mm, x right, y down; [x, y, w, h].
"""


EDITOR_HEADER = """\
# Made in the template editor of `formc serve` from {scan}: proposed by template learn, then checked by a person
# (edited_by_person says what they changed). Units: page mm, x right, y down; [x, y, w, h].
"""


def _rule_specs(rules: Sequence[str], accepted: Sequence[str] = ()) -> list[dict]:
    """The proposed rules (never checked) and after them those a person accepted or wrote (checked)."""
    return ([{"expr": expr, "proposed": True, "note": "implied by the layout"} for expr in rules]
            + [{"expr": expr, "note": "accepted by a person"} for expr in accepted])


def _tag_pattern(tag_id: int, page_number: int) -> str | None:
    """The variant's tag_id pattern giving `tag_id` on page `page_number` and distinct ids on the pages before it."""
    text, page = str(tag_id), str(page_number)
    if page_number == 1 and not text.endswith(page):
        return text
    return text[: -len(page)] + "{page}" if text.endswith(page) else None


def pages_by_tag(learned: list[LearnedPage]) -> dict[int, LearnedPage] | NotLearned:
    """Each page under its number, read from its tag: one form's pages' tags share all but their last digits, which
    are the page's number (1241, 1242, 1243)."""
    if any(page.frame.tag is None for page in learned):
        return NotLearned("learning several pages into one template needs every page's tag: a page has none")
    tags = [str(page.frame.tag.tag_id) for page in learned]
    common = len(os.path.commonprefix(tags)) if len(set(tags)) == len(tags) else max(map(len, tags))
    numbers = [int(tag[common:] or 0) for tag in tags]
    if min(numbers) < 1:
        return NotLearned(f"the page tags {', '.join(tags)} are not one form's pages (the same tag twice, or tags "
                          f"that do not end in their page numbers)")
    return dict(sorted(zip(numbers, learned)))


def _in_frame(boxes_mm: tuple[RectMM, ...], to_frame: np.ndarray) -> list[RectMM]:
    """Boxes (page mm of one page's learned frame) in another frame: top-left and bottom-right corners mapped."""
    out = []
    for x, y, w, h in boxes_mm:
        (x0, y0), (x1, y1) = map_points(to_frame, np.array([[x, y], [x + w, y + h]], np.float64))
        out.append((round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)))
    return out


def _pitch(boxes: list[RectMM]) -> float:
    """A row's mean pitch, first box to last (a field a person split may be one box: its width)."""
    return round((boxes[-1][0] - boxes[0][0]) / (len(boxes) - 1), 2) if len(boxes) > 1 else boxes[0][2]


def family_document(pages: dict[int, LearnedPage], name: str, scan: str, accepted: Sequence[str] = ()) -> dict | NotLearned:
    """One family file for the learned pages (by page number): its geometry is the first page's, every page's boxes
    brought into that frame through the marker centres; an id a page before already has gets `p<page>_` before it.
    `accepted`: rules a person accepted, written as rules (the pages' own are proposed)."""
    frame = pages[min(pages)].frame
    patterns = {_tag_pattern(page.frame.tag.tag_id, number) for number, page in pages.items()}
    if len(patterns) != 1 or None in patterns:
        tags = ", ".join(f"{page.frame.tag.tag_id} (page {number})" for number, page in pages.items())
        return NotLearned(f"the page tags {tags} do not end in their page numbers: give the page's number as printed "
                          f"(--page)")
    layouts: dict[str, dict] = {}
    rules, used = [], set()
    for number, page in pages.items():
        to_frame = cv2.getPerspectiveTransform(np.float32(page.frame.markers.centres_mm()),
                                               np.float32(frame.markers.centres_mm())).astype(np.float64)
        renamed = {f.id: f.id if f.id not in used else f"p{number}_{f.id}" for f in page.fields}
        used.update(renamed.values())
        fields = []
        for f in page.fields:
            boxes = _in_frame(f.boxes_mm, to_frame)
            fields.append({"id": renamed[f.id], **({"label": f.label} if f.label else {}),
                           "boxes": {"count": len(boxes), "origin_mm": list(boxes[0][:2]), "size_mm": list(boxes[0][2:]),
                                     "pitch_mm": _pitch(boxes), "stroke_mm": f.stroke_mm}})
        layouts[f"learned_page_{number}"] = {"fields": fields}
        rules += [re.sub(r"[a-z_][a-z0-9_]*", lambda m: renamed.get(m.group(0), m.group(0)), expr) for expr in page.rules]
    if len(layouts) < max(pages):
        layouts["not_learned"] = {}
    return {"family": name, "version": 1, "description": f"learned from {scan}", "source": scan,
            "page_size_mm": [round(v, 2) for v in frame.page_size_mm],
            "markers": {"square_mm": frame.markers.square_mm, "blocks_mm": [list(b) for b in frame.markers.blocks_mm]},
            "tag_rect_mm": [round(v, 2) for v in frame.tag.rect_mm], "tag_rotation_deg": frame.tag.rotation_deg,
            "layouts": layouts, "rules": _rule_specs(rules, accepted),
            "variants": [{"id": name, "model": name.upper(), "election_title": "",
                          "layouts": [f"learned_page_{n}" if n in pages else "not_learned" for n in range(1, max(pages) + 1)],
                          "tag_id": patterns.pop()}]}


def reference_document(learned: LearnedPage, name: str, page_number: int, scan: Path, px_per_mm: float,
                       accepted: Sequence[str] = (), flattened: dict | None = None) -> dict:
    """Boxes in the scan's px (x, y, w, h): each box's corners through the page homography, their bounding box;
    `accepted` as in `family_document`; `flattened`: the scan is the photo `scan` flattened (FlattenedSpec)."""
    h = learned.frame.page_homography
    fields = []
    for f in learned.fields:
        boxes = []
        for box in f.boxes_mm:
            corners = map_points(h, rect_corners(box))
            low, high = corners.min(axis=0), corners.max(axis=0)
            boxes.append([round(float(v), 1) for v in (*low, *(high - low))])
        fields.append({"id": f.id, **({"label": f.label} if f.label else {}), "boxes_px": boxes,
                       "stroke_px": round(f.stroke_mm * px_per_mm, 2)})
    return {"reference_form": name, "version": 1, "description": f"learned from {scan.name}", "source": scan.name,
            "pages": [{"number": page_number, "image": scan.name, "sha256": hashlib.sha256(scan.read_bytes()).hexdigest(),
                       "px_per_mm": px_per_mm, **({"flattened": flattened} if flattened else {}), "fields": fields}],
            "rules": _rule_specs(learned.rules, accepted)}


def template_document(pages: dict[int, LearnedPage], name: str, scans: list[Path], px_per_mm: float | None,
                      accepted: Sequence[str] = (), flattened: dict | None = None) -> dict | NotLearned:
    """The template file's document for the learned pages by page number: a family file when every page has its
    markers and tag, else (one page, its scan's resolution known) a reference-image file on `scans[0]`."""
    if all(page.frame.markers is not None and page.frame.tag is not None for page in pages.values()):
        return family_document(pages, name, ", ".join(scan.name for scan in scans), accepted)
    if len(pages) > 1:
        return NotLearned("several pages make one template only with every page's corner markers and tag")
    if px_per_mm is None:
        return NotLearned("a template without markers and tag is a reference-image template: give the scan's --dpi")
    (page_number, learned), = pages.items()
    return reference_document(learned, name, page_number, scans[0], px_per_mm, accepted, flattened)


def write_document(document: dict, out: Path, header: str, scan: Path) -> FormTemplate:
    """Write `document` to `out` under `header` (a reference-image file's scan copied beside it when not there yet)
    and load it back; TemplateError listing every problem when it does not validate."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if "reference_form" in document:
        beside = out.parent / scan.name
        if not beside.exists():
            shutil.copyfile(scan, beside)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)
    out.write_text(header + text, encoding="utf-8")
    return load_template_file(out)[0]


def write_template(pages: dict[int, LearnedPage], name: str, scans: list[Path], out: Path,
                   px_per_mm: float | None, flattened: dict | None = None) -> FormTemplate | NotLearned:
    """Write the template file `out` from the learned pages by page number (and, for a reference-image template, one
    page, the scan beside it; `flattened`: the scan is that photo flattened); load it back."""
    document = template_document(pages, name, scans, px_per_mm, flattened=flattened)
    if not document:
        return document
    try:
        return write_document(document, out, HEADER.format(scan=", ".join(scan.name for scan in scans)), scans[0])
    except TemplateError as exc:
        return NotLearned(f"the learned template does not validate: {'; '.join(exc.problems)}")


GREEN, ORANGE, RED, BLUE = (0, 170, 0), (0, 140, 255), (0, 0, 230), (230, 80, 0)


def overlay(learned: LearnedPage) -> np.ndarray:
    """(H, W, 3) BGR: the rectified page with every field's boxes (green, id above), boxes in no field (orange),
    the corner markers (red) and the page tag (blue)."""
    r = LEARN_PX_PER_MM
    picture = cv2.cvtColor(learned.page, cv2.COLOR_GRAY2BGR)

    def px(x: float, y: float) -> tuple[int, int]:
        return round(x * r), round(y * r)

    in_fields = {b for f in learned.fields for b in f.boxes_mm}
    for box in learned.boxes:
        x, y, w, h = box.rect_mm
        if not any(abs(x - fx) < 1 and abs(y - fy) < 1 for fx, fy, _, _ in in_fields):
            cv2.rectangle(picture, px(x, y), px(x + w, y + h), ORANGE, 2)
    for field in learned.fields:
        for x, y, w, h in field.boxes_mm:
            cv2.rectangle(picture, px(x, y), px(x + w, y + h), GREEN, 3)
        x, y = field.boxes_mm[0][:2]
        cv2.putText(picture, field.id, px(x, y - 1.5), cv2.FONT_HERSHEY_SIMPLEX, 0.9, GREEN, 2, cv2.LINE_AA)
    frame = learned.frame
    if frame.markers is not None:
        for cx, cy in frame.markers.centres_mm():
            cv2.drawMarker(picture, px(cx, cy), RED, cv2.MARKER_CROSS, round(4 * frame.markers.square_mm * r), 3)
    if frame.tag is not None:
        x, y, w, h = frame.tag.rect_mm
        cv2.rectangle(picture, px(x, y), px(x + w, y + h), BLUE, 3)
        cv2.putText(picture, f"tag {frame.tag.tag_id}", px(x, y + h + 6), cv2.FONT_HERSHEY_SIMPLEX, 1.2, BLUE, 3)
    return picture

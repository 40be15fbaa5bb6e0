"""The entry point: `learn_page(gray, settings)` proposes a template page from one image, with no template given."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ocr.learn.boxes import FoundBox, find_boxes, line_map
from ocr.learn.fields import (
    LearnedField,
    column_letter,
    fallback_id,
    fields_in_reading_order,
    id_for_label,
    regular_row,
)
from ocr.learn.flatten import PageBend, flatten
from ocr.learn.labels import heading_rect, read_strips, row_label_rect
from ocr.learn.page import LEARN_PX_PER_MM, NotLearned, PageFrame, find_page

SAME_COLUMN_MM = 2.0  # fields whose first boxes start this close in x are one column


@dataclass(frozen=True)
class LearnSettings:
    """How to read the image: a flat scan's resolution, or for a photo the printed marker square's side."""

    px_per_mm: float | None = None
    marker_square_mm: float | None = None
    read_labels: bool = True  # Tesseract on the row labels and column headings (about a second a page)


@dataclass(frozen=True)
class LearnedPage:
    frame: PageFrame
    page: np.ndarray  # the page rectified at LEARN_PX_PER_MM (window px = page mm * LEARN_PX_PER_MM), bend undone
    bend: PageBend | None  # what the page's long lines showed of a bent sheet; None without markers
    boxes: tuple[FoundBox, ...]  # every digit-box-like rectangle found, also those in no field
    fields: tuple[LearnedField, ...]  # in reading order
    rules: tuple[str, ...]  # rule expressions the layout implies, proposed


def _columns(fields: list[tuple[int, int, list[FoundBox]]]) -> list[int]:
    """A column index for each field: fields whose first boxes start within SAME_COLUMN_MM in x share one."""
    starts = [run[0].rect_mm[0] for _, _, run in fields]
    labels, anchors = [], []
    for x in starts:
        k = next((i for i, a in enumerate(anchors) if abs(a - x) <= SAME_COLUMN_MM), None)
        if k is None:
            anchors.append(x)
            k = len(anchors) - 1
        labels.append(k)
    return labels


def _ids(rows_cols: list[tuple[int, int]], heights: list[float], row_labels: dict[int, str],
         letters: list[str | None]) -> list[str]:
    """Each field's id: the known label's id (with _l/_p/_j in a row of headed columns; else on the row's one field
    of the tallest boxes, the total beside its row sums), else row_NN_col_M."""
    used: set[str] = set()
    out = []
    for i, ((row, col), letter) in enumerate(zip(rows_cols, letters)):
        base = id_for_label(row_labels.get(row, ""))
        in_row = [k for k, (r, _) in enumerate(rows_cols) if r == row]
        suffix = f"_{letter}" if len(in_row) > 1 and all(letters[k] for k in in_row) else ""
        main = all(heights[k] < heights[i] for k in in_row if k != i)
        candidate = f"{base}{suffix}" if base and (suffix or main) else None
        field_id = candidate if candidate and candidate not in used else fallback_id(row, col)
        used.add(field_id)
        out.append(field_id)
    return out


def proposed_rules(fields: list[LearnedField], columns: list[int], letters: list[str | None]) -> list[str]:
    """J = L + P in a row with L, P and J columns; a row whose label sums (A + B + C) the n fields above it."""
    rules = []
    for row in sorted({f.row for f in fields}):
        by_letter = {letters[i]: f.id for i, f in enumerate(fields) if f.row == row and letters[i]}
        if {"l", "p", "j"} <= by_letter.keys():
            rules.append(f"{by_letter['j']} = {by_letter['l']} + {by_letter['p']}")
    for i, field in enumerate(fields):
        # The terms printed in brackets, section references such as B.1 or V.A ('+' itself reads unreliably), or the
        # numbered rows above, (1+2) ('+' read as '-' or '#' too; a '4' for it is not taken: (142) stays unread).
        bracket = re.search(r"\(([^()]*)\)", field.label.upper())
        inner = bracket.group(1) if bracket else ""
        n = len(re.findall(r"\b[A-Z]{1,3}\.\s?[A-Z0-9]{1,2}\b", inner))
        if n < 2 and re.fullmatch(r"\s*\d\s*([+#-]\s*\d\s*)+", inner):
            n = len(re.findall(r"\d", inner))
        if n < 2 or "..." in inner or "…" in inner:
            continue
        above = [g for k, g in enumerate(fields) if columns[k] == columns[i] and g.row < field.row
                 and len(g.boxes_mm) == len(field.boxes_mm)]
        if len(above) >= n:
            rules.append(f"{field.id} = " + " + ".join(g.id for g in above[-n:]))
    return rules


def learn_page(gray: np.ndarray, settings: LearnSettings) -> LearnedPage | NotLearned:
    """A proposed template page from a greyscale image (H, W uint8) of a blank or filled form page."""
    frame = find_page(gray, settings.px_per_mm, settings.marker_square_mm)
    if not frame:
        return frame
    r = LEARN_PX_PER_MM
    page, bend = frame.rectified(gray, r), None
    if frame.markers:
        page, bend = flatten(page, r, frame.markers, frame.tag.rect_mm if frame.tag else None)
    boxes = find_boxes(page, r)
    found = fields_in_reading_order(boxes)
    if not found:
        return NotLearned(f"no digit boxes found on the page ({len(boxes)} single boxes or grids, no rows of 2-5 "
                          f"equal boxes): is this a form page, in focus and whole?")
    columns = _columns(found)
    row_labels: dict[int, str] = {}
    letters: list[str | None] = [None] * len(found)
    if settings.read_labels:
        first_of_row = {row: run[0].rect_mm for row, col, run in reversed(found) if col == 1}
        spans = {}
        for k, (_, _, run) in zip(columns, found):
            top = min(run[0].rect_mm[1], spans.get(k, (0, 0, np.inf))[2])
            spans[k] = (run[0].rect_mm[0], run[-1].rect_mm[0] + run[-1].rect_mm[2], top)
        rects = [row_label_rect(b) for b in first_of_row.values()] + [heading_rect(s[:2], s[2]) for s in spans.values()]
        texts = read_strips(page, line_map(page, r), r, rects)
        row_labels = dict(zip(first_of_row, texts))
        headings = dict(zip(spans, texts[len(first_of_row):]))
        letters = [column_letter(headings[k]) for k in columns]
    ids = _ids([(row, col) for row, col, _ in found], [run[0].rect_mm[3] for _, _, run in found], row_labels, letters)
    fields = [LearnedField(id=field_id, label=row_labels.get(row, ""), row=row, col=col, boxes_mm=regular_row(run),
                           stroke_mm=round(float(np.mean([b.stroke_mm for b in run])), 2))
              for field_id, (row, col, run) in zip(ids, found)]
    return LearnedPage(frame=frame, page=page, bend=bend, boxes=tuple(boxes), fields=tuple(fields),
                       rules=tuple(proposed_rules(fields, columns, letters)))

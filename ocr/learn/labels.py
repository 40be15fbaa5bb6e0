"""Printed labels read with Tesseract: the text left of each row of fields and the heading above each column.

Every strip is cut from the rectified page with its printed lines whitened (table rules would read as letters),
and all strips of a page are stacked into one picture read in one Tesseract call (one call per strip costs
seconds on a page of forty rows). Language `ind` where installed, else `eng`. Without Tesseract nothing is read
and the fields keep their row/column ids.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np

from ocr.templates.model import RectMM

LABEL_REACH_MM = 420.0  # how far left of a row's first field its label is looked for (labels start at the table's left)
HEADING_REACH_MM = 45.0  # how far above a column's top field its heading is looked for
GAP_PX = 24  # white between stacked strips


def tesseract_language() -> str | None:
    """`ind` or `eng`, whichever Tesseract has (ind first); None without Tesseract."""
    if shutil.which("tesseract") is None:
        return None
    import pytesseract

    languages = pytesseract.get_languages(config="")
    return next((lang for lang in ("ind", "eng") if lang in languages), None)


def row_label_rect(first_box_mm: RectMM) -> RectMM:
    """Where a row's label is printed: left of its first field's first box, level with it."""
    x, y, _, h = first_box_mm
    left = max(0.0, x - LABEL_REACH_MM)
    return left, y - 1.0, x - 2.0 - left, h + 2.0


def heading_rect(column_mm: tuple[float, float], top_mm: float) -> RectMM:
    """Where a column's heading is printed: above its top field, a little wider than the column (x0, x1)."""
    x0, x1 = column_mm
    top = max(0.0, top_mm - HEADING_REACH_MM)
    return x0 - 6.0, top, x1 - x0 + 12.0, top_mm - 1.0 - top


def read_strips(page: np.ndarray, lines: np.ndarray, px_per_mm: float, rects_mm: list[RectMM]) -> list[str]:
    """The text printed in each rectangle (page mm) of the rectified page, '' where none is read."""
    language = tesseract_language()
    if language is None or not rects_mm:
        return [""] * len(rects_mm)
    import pytesseract

    clean = np.where(lines > 0, 255, page).astype(np.uint8)
    strips, tops, y = [], [], GAP_PX
    for x, top, w, h in rects_mm:
        a, b = max(0, round(top * px_per_mm)), max(0, round((top + h) * px_per_mm))
        c, d = max(0, round(x * px_per_mm)), max(0, round((x + w) * px_per_mm))
        strip = clean[a:b, c:d]
        strips.append(strip)
        tops.append(y)
        y += strip.shape[0] + GAP_PX
    width = max(s.shape[1] for s in strips) + 2 * GAP_PX
    sheet = np.full((y, width), 255, np.uint8)
    for strip, top in zip(strips, tops):
        sheet[top:top + strip.shape[0], GAP_PX:GAP_PX + strip.shape[1]] = strip
    # Tesseract reads best with capitals some 30 px high: the page's 3-4 mm text at twice 5 px/mm.
    sheet = cv2.resize(sheet, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    data = pytesseract.image_to_data(sheet, lang=language, config="--psm 6", output_type=pytesseract.Output.DICT)
    words: list[list[tuple[int, int, int, str]]] = [[] for _ in rects_mm]
    bounds = np.array(tops + [y]) * 2
    for text, left, top, height, block, line in zip(data["text"], data["left"], data["top"], data["height"],
                                                   data["block_num"], data["line_num"]):
        if text.strip():
            k = int(np.searchsorted(bounds, top + height / 2, side="right")) - 1
            if 0 <= k < len(words):
                words[k].append((block, line, left, text))
    return [" ".join(w for *_, w in sorted(found)) for found in words]

"""Identify: which template and page a located page is, from its tag id or, failing that, its printed title.

The title fallback reads the "MODEL / C.HASIL-... / Halaman n dari N" box with Tesseract
(pytesseract; the binary is a system package). Without Tesseract the fallback is skipped and the
caller is told so; with it, a title that names a form with several templates (C.HASIL-KWK comes
with 2..6 paslon) identifies the page only when the caller names the template.
"""

from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from ocr.reader.geometry import rectify
from ocr.templates.model import FormTemplate

TITLE_PX_PER_MM = 8.0
_PAGE = re.compile(r"HALAMAN\s*(\d)\s*DA[A-Z1]{0,2}\s*(\d)")  # a small 'dari' is read 'dan' or 'dar' now and then
_MODEL = re.compile(r"C\s*[.,]?\s*HASIL\s*[-–]?\s*([A-Z]{3,4})")


@dataclass(frozen=True)
class PageId:
    template_id: str
    page_number: int
    by: str  # 'tag', 'title' or 'caller'


def by_tag(tag_id: int, templates: tuple[FormTemplate, ...]) -> PageId | None:
    for template in templates:
        for page in template.pages:
            if page.tag_id == tag_id:
                return PageId(template.id, page.number, "tag")
    return None


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


def read_title(gray: np.ndarray, page_homography: np.ndarray, template: FormTemplate) -> tuple[str, int] | None:
    """(model, page number) printed in the title box, e.g. ('KWK', 2), or None when unreadable."""
    if not tesseract_available():
        warnings.warn("tesseract is not installed: pages whose tag is unreadable cannot be identified by their title; "
                      "install the tesseract-ocr package", RuntimeWarning, stacklevel=2)
        return None
    import pytesseract

    x, y, w, h = _title_rect(template)
    r = TITLE_PX_PER_MM
    window = rectify(gray, page_homography, (x, y), (int(w * r), int(h * r)), r)
    # Tesseract reads best with capitals some 30 px high: twice the window's 8 px/mm.
    window = cv2.resize(window, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    text = pytesseract.image_to_string(window, config="--psm 6").upper()
    model, page = _MODEL.search(text), _PAGE.search(text.replace("O", "0"))
    if not model or not page:
        return None
    return model.group(1), int(page.group(1))


def _title_rect(template: FormTemplate) -> tuple[float, float, float, float]:
    """The title box and the 'Halaman' line under it, from the printed texts of the template's header."""
    texts = [t for t in template.pages[0].texts if t.text == "MODEL" or t.text.startswith("Halaman")]
    xs = [t.xy_mm[0] for t in texts]
    ys = [t.xy_mm[1] for t in texts]
    return min(xs) - 28, min(ys) - 8, 56, max(ys) - min(ys) + 16


def by_title(model: str, page_number: int, templates: tuple[FormTemplate, ...]) -> list[str]:
    """Ids of the templates whose printed model name ends with `model` (KWK, PPWP) and have that page."""
    return [t.id for t in templates if any(p.number == page_number and p.titles[1].endswith(model) for p in t.pages)]

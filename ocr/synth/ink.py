"""Write a TPS's numbers onto rendered blank pages as a KPPS officer would: digits, fillers, tallies, bubbles.

All drawing happens on one ink-coverage mask per page (uint8, 255 = full ink, page px at `scale`
px/mm), composited once in the officer's ink colour. Geometry comes from the template (mm) through
`ocr.templates.render.rect_px`, the same rounding the blank page was drawn with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ocr.synth.handwriting import GlyphBank, cross_seven, flag_one, procedural_glyph
from ocr.synth.tally import TallyLabels, TallyStyle, draw_tally, strike_boxes, struck_rows
from ocr.templates.model import NumberField, TemplatePage
from ocr.templates.render import rect_px

INKS_BGR = {"blue": (140, 55, 25), "black": (40, 35, 35), "pencil": (95, 95, 100)}
FILLERS = ("X", " ", "-", "0")


@dataclass(frozen=True)
class WriterStyle:
    """One officer's hand, kept for a whole submission."""

    ink: str
    ink_bgr: tuple[int, int, int]
    strength: float  # peak ink opacity: pencil is fainter
    stroke_scale: float  # stroke width relative to the glyph source's
    size: float  # glyph height as a share of the box height
    filler: str  # what goes into unused leading boxes
    blocky: float  # chance of tracing the dotted guide in guide boxes
    bubble_for_filler: str  # 'none' or '0': what an X box gets on a bubble page
    sloppy: float  # chance a glyph crosses the box frame
    flags_ones: bool  # writes the 1 with a long flag (MNIST-trained readers take it for a 7)
    crosses_sevens: bool  # writes the 7 with a bar across the stem

    @classmethod
    def random(cls, rng: np.random.Generator) -> "WriterStyle":
        ink = str(rng.choice(["blue", "black", "pencil"], p=[0.6, 0.3, 0.1]))
        return cls(ink=ink, ink_bgr=INKS_BGR[ink],
                   strength=float(rng.uniform(0.45, 0.65) if ink == "pencil" else rng.uniform(0.8, 1.0)),
                   stroke_scale=float(rng.uniform(0.6, 1.4)), size=float(rng.uniform(0.55, 0.85)),
                   filler=str(rng.choice(FILLERS, p=[0.6, 0.15, 0.15, 0.1])), blocky=float(rng.uniform(0.3, 0.9)),
                   bubble_for_filler=str(rng.choice(["none", "0"])), sloppy=float(rng.uniform(0.0, 0.08)),
                   flags_ones=bool(rng.random() < 0.6), crosses_sevens=bool(rng.random() < 0.35))


def glyph_string(value: int, boxes: int, filler: str) -> str:
    """What is written in the boxes: right aligned digits, `filler` in unused leading boxes ('X32')."""
    digits = str(value)
    if len(digits) > boxes:
        raise ValueError(f"{value} does not fit in {boxes} boxes")
    return filler * (boxes - len(digits)) + digits


def _place(mask: np.ndarray, glyph: np.ndarray, box: tuple[int, int, int, int], height: float, width: float | None,
           rng: np.random.Generator, sloppy: float) -> None:
    """Scale `glyph` to `height` px (or `width` px) and draw it, jittered, into `box` (x, y, w, h px) of `mask`."""
    gh, gw = glyph.shape
    scale = (width / gw) if width else (height / gh)
    scale *= rng.uniform(0.9, 1.1)
    th, tw = max(2, round(gh * scale)), max(2, round(gw * scale * rng.uniform(0.85, 1.15)))
    angle = rng.normal(0, 5)
    resized = cv2.resize(glyph, (tw, th), interpolation=cv2.INTER_LINEAR)
    pad = max(th, tw) // 4
    resized = cv2.copyMakeBorder(resized, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    rot = cv2.getRotationMatrix2D((resized.shape[1] / 2, resized.shape[0] / 2), angle, 1.0)
    resized = cv2.warpAffine(resized, rot, (resized.shape[1], resized.shape[0]))
    x, y, w, h = box
    spread = 0.35 if rng.random() < sloppy else 0.08
    cx = x + w / 2 + rng.normal(0, spread / 2) * w
    cy = y + h / 2 + rng.normal(0, spread / 2) * h
    x0, y0 = round(cx - resized.shape[1] / 2), round(cy - resized.shape[0] / 2)
    # Clip to the page.
    sx0, sy0 = max(0, -x0), max(0, -y0)
    x0c, y0c = max(0, x0), max(0, y0)
    x1c, y1c = min(mask.shape[1], x0 + resized.shape[1]), min(mask.shape[0], y0 + resized.shape[0])
    if x1c <= x0c or y1c <= y0c:
        return
    patch = resized[sy0: sy0 + (y1c - y0c), sx0: sx0 + (x1c - x0c)]
    np.maximum(mask[y0c:y1c, x0c:x1c], patch, out=mask[y0c:y1c, x0c:x1c])


def _stroke(glyph: np.ndarray, factor: float) -> np.ndarray:
    """Thicken (factor > 1) or thin (< 1) a glyph's strokes."""
    k = int(round(abs(factor - 1) * max(glyph.shape) / 12))
    if k < 1:
        return glyph
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 1, k + 1))
    return cv2.dilate(glyph, kernel) if factor > 1 else cv2.erode(glyph, kernel)


def write_field(mask: np.ndarray, field: NumberField, glyphs: str, scale: float, style: WriterStyle,
                bank: GlyphBank, rng: np.random.Generator) -> None:
    """Write `glyphs` (one character per box: digit, 'X', '-', ' ') into the field's boxes."""
    for char, box_mm in zip(glyphs, field.boxes_mm):
        if char == " ":
            continue
        box = rect_px(box_mm, scale)
        blocky = field.guide == "seven_segment" and char.isdigit() and rng.random() < style.blocky
        if blocky:
            glyph = procedural_glyph("b" + char, rng, size=64)
        elif char == "X" and (bank.count("X") == 0 or rng.random() < 0.4):
            glyph = procedural_glyph("X", rng)
        elif char in "-/":
            glyph = procedural_glyph(char, rng)
        else:
            glyph = _stroke(bank.sample(char, rng), style.stroke_scale)
            if char == "1" and style.flags_ones:
                glyph = flag_one(glyph, rng)
            elif char == "7" and style.crosses_sevens:
                glyph = cross_seven(glyph, rng)
        height = box[3] * style.size * (rng.uniform(0.45, 1.05) if char == "X" else 1.0)  # some cross small
        width = box[2] * rng.uniform(0.4, 0.6) if char == "-" else None
        _place(mask, glyph, box, height, width, rng, style.sloppy)


def fill_bubbles(mask: np.ndarray, field: NumberField, glyphs: str, scale: float, style: WriterStyle,
                 rng: np.random.Generator) -> list[str | None]:
    """Blacken the bubble of each box's digit; returns the digit filled per column (None: none)."""
    filled: list[str | None] = []
    for char, column in zip(glyphs, field.bubbles.columns):
        digit = char if char.isdigit() else ("0" if style.bubble_for_filler == "0" else None)
        filled.append(digit)
        if digit is None:
            continue
        circle = column[int(digit)]
        cx, cy = circle.centre_mm[0] * scale, circle.centre_mm[1] * scale
        r = circle.diameter_mm / 2 * scale * rng.uniform(0.75, 1.0)
        centre = (round((cx + rng.normal(0, 0.05 * r)) * 16), round((cy + rng.normal(0, 0.05 * r)) * 16))
        axes = (round(r * 16), round(r * rng.uniform(0.85, 1.0) * 16))
        cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, shift=4)
    return filled


class WrittenPage(NamedTuple):
    image: np.ndarray  # the filled page, BGR uint8
    glyphs: dict[str, str]  # per field, one character per box ('/' : the box is struck through as unused)
    bubbles: dict[str, list]  # per bubble field, the digit filled per column
    tallies: dict[str, TallyLabels]  # per tally grid (its field id), what was drawn


def _struck_sums(page: TemplatePage, values: dict[str, int], style: TallyStyle) -> dict[str, bool]:
    """Row-sum fields of the rows the officer strikes out (their boxes get a line, not digits)."""
    out = {}
    for grid in page.tally_grids:
        out.update(zip(grid.row_field_ids, struck_rows([values[f] for f in grid.row_field_ids], style)))
    return out


def write_page(page_gray: np.ndarray, page: TemplatePage, values: dict[str, int], scale: float, style: WriterStyle,
               bank: GlyphBank, rng: np.random.Generator, tally_style: TallyStyle | None = None) -> WrittenPage:
    """The page filled with `values` in the officer's hand; `tally_style` None: one drawn from `rng` if the page has
    a tally grid."""
    tally_style = tally_style or (TallyStyle.random(rng) if page.tally_grids else None)
    mask = np.zeros(page_gray.shape, np.uint8)
    struck = _struck_sums(page, values, tally_style)
    written = WrittenPage(None, {}, {}, {})
    for field in page.fields:
        if struck.get(field.id):
            written.glyphs[field.id] = "/" * len(field.boxes_mm)
            continue
        glyphs = glyph_string(values[field.id], len(field.boxes_mm), style.filler)
        write_field(mask, field, glyphs, scale, style, bank, rng)
        written.glyphs[field.id] = glyphs
        if field.bubbles is not None:
            written.bubbles[field.id] = fill_bubbles(mask, field, glyphs, scale, style, rng)
    for grid in page.tally_grids:
        written.tallies[grid.field_id] = draw_tally(mask, grid, [values[f] for f in grid.row_field_ids], scale,
                                                    tally_style, rng)
        boxes = [rect_px(b, scale) for f in page.fields if f.id in grid.row_field_ids and struck[f.id]
                 for b in f.boxes_mm]
        if boxes:
            strike_boxes(mask, boxes, max(1, round(tally_style.thickness_mm * scale)), rng)
    coverage = cv2.convertScaleAbs(mask, alpha=style.strength)
    kept = cv2.merge([cv2.multiply(page_gray, 255 - coverage, scale=1 / 255)] * 3)
    ink = cv2.merge([cv2.convertScaleAbs(coverage, alpha=c / 255) for c in style.ink_bgr])
    return written._replace(image=cv2.add(kept, ink))

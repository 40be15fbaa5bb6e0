"""Draw a blank template page: frame lines, corner markers, page tag, titles, boxes, grids, bubbles.

Pixel geometry is derived from page millimetres by one rounding rule (`rect_px`), shared by the
drawing and by `page_boxes`, so that `formc template boxes` describes exactly what
`formc template render` draws. Pixel coordinates are (x, y) from the image's top-left.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocr.templates.model import FormTemplate, NumberField, RectMM, TallyGrid, TemplatePage

MM_PER_INCH = 25.4
INK = 0
GRID_GREY = 150  # tally cells are printed lighter than the table frames
GUIDE_GREY = 185  # the dotted seven-segment writing guide is faint


def px_per_mm(dpi: float) -> float:
    return dpi / MM_PER_INCH


def rect_px(rect_mm: RectMM, scale: float) -> tuple[int, int, int, int]:
    """(x, y, w, h) in px of a rectangle in mm, edges rounded to the nearest pixel."""
    x, y, w, h = rect_mm
    x0, y0 = round(x * scale), round(y * scale)
    return x0, y0, round((x + w) * scale) - x0, round((y + h) * scale) - y0


def page_size_px(template: FormTemplate, scale: float) -> tuple[int, int]:
    """(width, height) in px of a page rendered at `scale` px/mm."""
    return round(template.page_size_mm[0] * scale), round(template.page_size_mm[1] * scale)


def bubble_rects_px(field: NumberField, scale: float) -> list[list[tuple[int, int, int, int]]]:
    """Per box column, the (x, y, w, h) px square around each bubble 0..9."""
    if field.bubbles is None:
        return []
    out = []
    for column in field.bubbles.columns:
        out.append([rect_px((c.centre_mm[0] - c.diameter_mm / 2, c.centre_mm[1] - c.diameter_mm / 2,
                             c.diameter_mm, c.diameter_mm), scale) for c in column])
    return out


def tally_cells_px(grid: TallyGrid, scale: float) -> list[list[tuple[int, int, int, int]]]:
    """Per row of a tally grid, the (x, y, w, h) px of each cell, left to right."""
    return [[rect_px(cell, scale) for cell in row] for row in grid.cells_mm()]


def page_boxes(template: FormTemplate, page_number: int, dpi: float) -> dict:
    """The public `formc template boxes` contract: every field's boxes and bubbles, and its tally grid's cells, in px."""
    scale = px_per_mm(dpi)
    width, height = page_size_px(template, scale)
    page = template.page(page_number)
    fields = {}
    for field in page.fields:
        entry: dict = {"boxes": [list(rect_px(b, scale)) for b in field.boxes_mm]}
        if field.bubbles is not None:
            entry["bubbles"] = [[list(r) for r in column] for column in bubble_rects_px(field, scale)]
        fields[field.id] = entry
    for grid in page.tally_grids:  # a grid whose number boxes are on another page gets an entry of its own
        fields.setdefault(grid.field_id, {})["tally_cells"] = [[list(c) for c in row] for row in tally_cells_px(grid, scale)]
    return {"template": template.id, "page": page_number, "dpi": dpi, "width": width, "height": height,
            "fields": fields}


@lru_cache(maxsize=64)
def font(size_px: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled scalable font: no system font needed on a fresh machine.
    return ImageFont.load_default(size=max(6, size_px))


def bold_stroke(size_px: int, bold: bool = True) -> int:
    """Stroke width that makes text bold: Pillow's bundled font has no bold face."""
    return round(size_px / 28) if bold else 0


def _frame(draw: ImageDraw.ImageDraw, rect: tuple[int, int, int, int], thickness: int, fill: int = INK) -> None:
    """A rectangle outline whose stroke is centred on the rectangle's edges."""
    x, y, w, h = rect
    t0 = thickness // 2
    t1 = thickness - t0 - 1
    draw.rectangle((x - t0, y - t0, x + w + t1, y + t1), fill=fill)
    draw.rectangle((x - t0, y + h - t0, x + w + t1, y + h + t1), fill=fill)
    draw.rectangle((x - t0, y - t0, x + t1, y + h + t1), fill=fill)
    draw.rectangle((x + w - t0, y - t0, x + w + t1, y + h + t1), fill=fill)


def _thickness(stroke_mm: float, scale: float) -> int:
    return max(1, round(stroke_mm * scale))


def _seven_segment_guide(draw: ImageDraw.ImageDraw, box_mm: RectMM, scale: float) -> None:
    """The faint dotted '8' printed inside the 2024 total boxes (8.9 x 14 mm, centred)."""
    x, y, w, h = box_mm
    gw, gh = 8.94, 13.96
    left, top = x + (w - gw) / 2, y + (h - gh) / 2
    corners = [(left, top), (left + gw, top), (left, top + gh / 2), (left + gw, top + gh / 2),
               (left, top + gh), (left + gw, top + gh)]
    segments = [(0, 1), (2, 3), (4, 5), (0, 2), (1, 3), (2, 4), (3, 5)]
    radius = max(0.5, 0.22 * scale)
    for a, b in segments:
        (xa, ya), (xb, yb) = corners[a], corners[b]
        n = max(2, int(np.hypot(xb - xa, yb - ya) / 1.1))
        for t in np.linspace(0, 1, n):
            cx, cy = (xa + t * (xb - xa)) * scale, (ya + t * (yb - ya)) * scale
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=GUIDE_GREY)


def _text(image: Image.Image, draw: ImageDraw.ImageDraw, text: str, xy_px: tuple[float, float], size_px: int,
          anchor: str, rotate: int, bold: bool = False) -> None:
    face = font(size_px)
    stroke = bold_stroke(size_px, bold)
    if rotate == 0:
        draw.text(xy_px, text, fill=INK, font=face, anchor=anchor, stroke_width=stroke, stroke_fill=INK)
        return
    left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
    patch = Image.new("L", (right - left + 2, bottom - top + 2), 255)
    ImageDraw.Draw(patch).text((1 - left, 1 - top), text, fill=INK, font=face, stroke_width=stroke, stroke_fill=INK)
    patch = patch.rotate(rotate, expand=True, fillcolor=255)
    image.paste(patch, (round(xy_px[0]), round(xy_px[1])), Image.eval(patch, lambda v: 255 - v))


def _tag_image(tag_id: int, side_px: int) -> np.ndarray:
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h10)
    return cv2.aruco.generateImageMarker(dictionary, tag_id, side_px, borderBits=1)


def _draw_page(template: FormTemplate, page: TemplatePage, scale: float) -> Image.Image:
    width, height = page_size_px(template, scale)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for printed in page.rects:
        px = rect_px(printed.rect_mm, scale)
        if printed.fill:
            draw.rectangle((px[0], px[1], px[0] + px[2], px[1] + px[3]), fill=INK)
        else:
            _frame(draw, px, _thickness(printed.stroke_mm, scale))
    for grid in page.tally_grids:
        for row in tally_cells_px(grid, scale):
            for cell in row:
                _frame(draw, cell, _thickness(0.35, scale), GRID_GREY)
    for field in page.fields:
        for box in field.boxes_mm:
            if field.guide == "seven_segment":
                _seven_segment_guide(draw, box, scale)
            _frame(draw, rect_px(box, scale), _thickness(field.stroke_mm, scale))
        for column in (field.bubbles.columns if field.bubbles else ()):
            for digit, circle in enumerate(column):
                cx, cy = circle.centre_mm[0] * scale, circle.centre_mm[1] * scale
                r = circle.diameter_mm / 2 * scale
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=INK, width=_thickness(0.35, scale))
                draw.text((cx, cy), str(digit), fill=INK, font=font(round(circle.diameter_mm * 0.62 * scale)),
                          anchor="mm")
    for text in page.texts:
        _text(image, draw, text.text, (text.xy_mm[0] * scale, text.xy_mm[1] * scale), round(text.size_mm * scale),
              text.anchor, text.rotate, text.bold)
    if template.markers is not None:  # a reference-image template has none: its page is its boxes
        _draw_markers_and_tag(image, draw, template, page, scale)
    return image


def _draw_markers_and_tag(image: Image.Image, draw: ImageDraw.ImageDraw, template: FormTemplate, page: TemplatePage,
                          scale: float) -> None:
    square = template.markers.square_mm
    for bx, by in template.markers.blocks_mm:
        for dx, dy in ((0.0, 0.0), (square, square)):
            x, y, w, h = rect_px((bx + dx, by + dy, square, square), scale)
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=INK)
    tx, ty, tw, th = rect_px(template.tag_rect_mm, scale)
    # Drawn with whole cells (6 data + black border = 8) then stretched to fill the declared rectangle exactly.
    tag = np.rot90(_tag_image(page.tag_id, 8 * max(1, -(-max(tw, th) // 8))), template.tag_rotation_deg // 90)
    tag = cv2.resize(np.ascontiguousarray(tag), (tw, th), interpolation=cv2.INTER_NEAREST)
    image.paste(Image.fromarray(tag), (tx, ty))
    _text(image, draw, str(page.tag_id), (tx - 9.5 * scale, ty + 3 * scale), round(6.0 * scale), "la", 90, True)


def render_page(template: FormTemplate, page_number: int, dpi: float) -> np.ndarray:
    """The blank page as a (H, W) uint8 grayscale array (255 = paper)."""
    return np.asarray(_draw_page(template, template.page(page_number), px_per_mm(dpi)))


def render_pdf(template: FormTemplate, dpi: float, path: Path) -> None:
    """All pages at true size (the PDF's page is the template's page size in mm), for printing."""
    pages = [_draw_page(template, p, px_per_mm(dpi)) for p in template.pages]
    pages[0].save(path, "PDF", save_all=True, append_images=pages[1:], resolution=dpi)

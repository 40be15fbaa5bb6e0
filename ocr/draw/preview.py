"""Previews: what an operator checks before sending a photo, and what a reviewer sees beside a flagged field.

A page preview is the photo warped onto its template page (page px = page mm x `px_per_mm`, so the
template's geometry maps straight onto it), every field of that page outlined in its status colour
with its value in a label beside its boxes, what each row's tally marks count over the end of that
row (green where they agree with the row's written sum, red where not), and a side panel on the
right: the submission's status, a legend, the failed rules with the values of both sides, and the
page's fields to check with their reasons. A refused photo gets its reason in large letters over a
dimmed thumbnail instead. Images are BGR uint8 (OpenCV's order); text is drawn by Pillow in the font
of ocr/templates/render.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ocr.draw.panel import Column, panel, tally_text
from ocr.draw.placement import PagePlacement, placements
from ocr.draw.style import MUTED_RGB, NOT_JUDGED_RGB, RGB, STATUS_RGB, WHITE, label_box
from ocr.reader.geometry import map_points, rectify, window_to_photo
from ocr.record import FieldResult, SubmissionResult
from ocr.templates.model import FormTemplate, NumberField, TemplatePage
from ocr.templates.render import bold_stroke, bubble_rects_px, font, page_size_px, rect_px, tally_cells_px

Rect = tuple[int, int, int, int]  # (x0, y0, x1, y1) px, end exclusive

PANEL_MM = 280.0  # side panel width in page mm, so that it scales with the page
REFUSAL_WIDTH_PX = 1600


def _warp(photo_gray: np.ndarray, alignment: PagePlacement, origin_mm: tuple[float, float], size_px: tuple[int, int],
          px_per_mm: float) -> np.ndarray:
    """The page region whose top-left is `origin_mm`, at `px_per_mm`; white where it leaves the photo."""
    return rectify(photo_gray, alignment.page_homography, origin_mm, size_px, px_per_mm,
                   border=cv2.BORDER_CONSTANT, border_value=255)


def warp_page(photo_gray: np.ndarray, alignment: PagePlacement, px_per_mm: float = 4.0) -> np.ndarray:
    """(H, W) uint8: the photo resampled onto its whole page, page px = page mm x `px_per_mm`."""
    return _warp(photo_gray, alignment, (0.0, 0.0), page_size_px(alignment.template, px_per_mm), px_per_mm)


def field_crop(photo_gray: np.ndarray, alignment: PagePlacement, field_id: str, px_per_mm: float = 12.0,
               margin_mm: float = 3.0) -> np.ndarray:
    """(H, W) uint8: a field's boxes and `margin_mm` around them, cut from the page and enlarged to `px_per_mm`."""
    field = alignment.template.fields[field_id]
    if field.page != alignment.page_number:
        raise ValueError(f"{field_id} is on page {field.page}, this photo is page {alignment.page_number}")
    boxes = np.array(field.boxes_mm)
    x0, y0 = boxes[:, :2].min(axis=0) - margin_mm
    x1, y1 = (boxes[:, :2] + boxes[:, 2:]).max(axis=0) + margin_mm
    size = (round((x1 - x0) * px_per_mm), round((y1 - y0) * px_per_mm))
    return _warp(photo_gray, alignment, (float(x0), float(y0)), size, px_per_mm)


def _corners(rect: tuple[int, int, int, int], pad: int = 0) -> Rect:
    x, y, w, h = rect
    return x - pad, y - pad, x + w + pad, y + h + pad


def _union(rects: list[Rect]) -> Rect:
    return min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _printed_obstacles(page: TemplatePage, px_per_mm: float) -> list[Rect]:
    """What a value label must not cover: every box (frame included), bubble and tally grid of the page."""
    pad = round(0.8 * px_per_mm)
    rects = [_corners(rect_px(b, px_per_mm), pad) for f in page.fields for b in f.boxes_mm]
    rects += [_corners(r, pad) for f in page.fields for column in bubble_rects_px(f, px_per_mm) for r in column]
    rects += [_corners(rect_px(g.rect_mm, px_per_mm), pad) for g in page.tally_grids]
    return rects


def _place_label(text: str, field: NumberField, taken: list[Rect], bounds: Rect, px_per_mm: float) -> tuple[Rect, int]:
    """The label's rectangle and font size: the largest that fits right of, left of, above or below the boxes
    without covering print that matters or another label; the smallest, on the right, when none does."""
    group = _union([_corners(rect_px(b, px_per_mm)) for b in field.boxes_mm])
    gap = round(1.2 * px_per_mm)
    mid = (group[1] + group[3]) // 2
    size = round(0.75 * rect_px(field.boxes_mm[0], px_per_mm)[3])
    smallest = round(4.0 * px_per_mm)
    while True:
        w, h, *_ = label_box(text, size)
        spots = [(group[2] + gap, mid - h // 2), (group[0] - gap - w, mid - h // 2),
                 (group[2] - w, group[1] - gap - h), (group[2] - w, group[3] + gap)]
        for x, y in spots:
            rect = (x, y, x + w, y + h)
            inside = bounds[0] <= x and bounds[1] <= y and x + w <= bounds[2] and y + h <= bounds[3]
            if inside and not any(_overlaps(rect, t) for t in taken):
                return rect, size
        if size <= smallest:
            x, y = spots[0]
            return (x, y, x + w, y + h), size
        size = max(smallest, int(size * 0.9))


def _draw_label(draw: ImageDraw.ImageDraw, text: str, rect: Rect, size: int, fill: RGB) -> None:
    _, _, pad, left, top = label_box(text, size)
    draw.rounded_rectangle(rect, radius=pad, fill=fill, outline=WHITE, width=max(1, size // 20))
    draw.text((rect[0] + pad - left, rect[1] + pad - top), text, fill=WHITE, font=font(size),
              stroke_width=bold_stroke(size), stroke_fill=WHITE)


def _tally_colour(read: FieldResult) -> RGB:
    """Green where the marks agree with the written row sum (a struck row with 0), red where they do not."""
    return STATUS_RGB["ok" if read.tally.count == read.value else "unreadable"]


def _draw_tallies(draw: ImageDraw.ImageDraw, page: TemplatePage, result: SubmissionResult, px_per_mm: float) -> None:
    """Each row's counted marks (or `row struck`) over the end of its tally row, beside the row sum's own label."""
    gap = round(0.8 * px_per_mm)
    for grid in page.tally_grids:
        for field_id, row in zip(grid.row_field_ids, tally_cells_px(grid, px_per_mm)):
            read = result.fields.get(field_id)
            text = tally_text(read.tally) if read else None
            if text is None:
                continue
            _, y0, x1, y1 = _union([_corners(cell) for cell in row])
            size = round(0.45 * (y1 - y0))
            w, h, *_ = label_box(text, size)
            top = (y0 + y1 - h) // 2
            _draw_label(draw, text, (x1 - gap - w, top, x1 - gap, top + h), size, _tally_colour(read))


def render_page_preview(photo_gray: np.ndarray, alignment: PagePlacement, result: SubmissionResult,
                        px_per_mm: float = 4.0) -> np.ndarray:
    """BGR uint8: the photo on its page with this page's fields outlined and labelled, the side panel at the right.

    Page px (x, y) = page mm x `px_per_mm` from the image's top-left: the panel adds width, not an offset."""
    page = alignment.template.page(alignment.page_number)
    image = Image.fromarray(warp_page(photo_gray, alignment, px_per_mm)).convert("RGB")
    draw = ImageDraw.Draw(image)
    photo_px_to_page_px = np.linalg.inv(window_to_photo(alignment.page_homography, (0.0, 0.0), px_per_mm))
    line = max(2, round(0.7 * px_per_mm))
    taken = _printed_obstacles(page, px_per_mm)
    bounds = (0, 0, *image.size)
    for field in page.fields:
        read = result.fields.get(field.id)
        colour = STATUS_RGB[read.status] if read else NOT_JUDGED_RGB
        for box in map_points(photo_px_to_page_px, alignment.box_corners(field.id)).reshape(-1, 4, 2):
            points = [(float(x), float(y)) for x, y in box]
            draw.line(points + points[:1], fill=colour, width=line, joint="curve")
        if read is None:
            continue
        text = "?" if read.value is None else str(read.value)
        rect, size = _place_label(text, field, taken, bounds, px_per_mm)
        taken.append(_corners((rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]), round(0.5 * px_per_mm)))
        _draw_label(draw, text, rect, size, colour)
    _draw_tallies(draw, page, result, px_per_mm)
    side = panel(result, alignment, round(PANEL_MM * px_per_mm), image.height, px_per_mm)
    canvas = Image.new("RGB", (image.width + side.width, side.height), WHITE)
    canvas.paste(image, (0, 0))
    canvas.paste(side, (image.width, 0))
    ImageDraw.Draw(canvas).rectangle((image.width, 0, image.width + line - 1, canvas.height), fill=MUTED_RGB)
    return np.ascontiguousarray(np.asarray(canvas)[:, :, ::-1])


def _write_refusal(image: Image.Image, source: str, code: str, message: str) -> int:
    """The refusal's text, light on dark; its height (a dry run on a one-row image measures it)."""
    margin = image.width // 20
    col = Column(image, margin, margin, image.width - 2 * margin)
    col.text("PHOTO REFUSED", 56, (255, 120, 110), bold=True)
    col.space(20)
    col.text(code.replace("_", " ").upper(), 120, WHITE, bold=True)
    col.text(source, 44, (200, 200, 200))
    col.space(40)
    col.text(message, 64, WHITE)
    return col.y + margin


def render_refusal(source: str, code: str, message: str, photo_gray: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8: why a photo was refused, in large letters, over a dimmed thumbnail of the photo when there is one."""
    width = REFUSAL_WIDTH_PX
    text = Image.new("RGBA", (width, _write_refusal(Image.new("RGBA", (width, 1)), source, code, message)), (0, 0, 0, 0))
    _write_refusal(text, source, code, message)
    if photo_gray is None:
        background = np.full((text.height, width), 45, np.uint8)
    else:
        scale = min(width / photo_gray.shape[1], 2 * width / photo_gray.shape[0])
        size = (round(photo_gray.shape[1] * scale), max(1, round(photo_gray.shape[0] * scale)))
        thumb = (cv2.resize(photo_gray, size, interpolation=cv2.INTER_AREA) * 0.3).astype(np.uint8)  # white reads over it
        background = np.zeros((max(text.height, size[1]), width), np.uint8)
        x0 = (width - size[0]) // 2
        background[:size[1], x0:x0 + size[0]] = thumb
    canvas = Image.fromarray(background).convert("RGBA")
    canvas.alpha_composite(text)
    return np.ascontiguousarray(np.asarray(canvas.convert("RGB"))[:, :, ::-1])


def render_submission_preview(result: SubmissionResult, templates: tuple[FormTemplate, ...],
                              grays: list[np.ndarray | None], px_per_mm: float = 4.0) -> list[tuple[str, np.ndarray]]:
    """(source, BGR image) per photo, in order: a page preview for a read page, the refusal for a refused one; drawn
    from the record, its template and each photo's greyscale image (None: not decoded)."""
    images = []
    for page, placement, gray in zip(result.pages, placements(result, templates), grays, strict=True):
        if page.status == "refused":
            error = page.errors[0]
            images.append((page.source, render_refusal(page.source, str(error.code), error.message, gray)))
        elif gray is None or placement is None:
            raise ValueError(f"{page.source}: a preview needs the photo and a record with its page geometry")
        else:
            images.append((page.source, render_page_preview(gray, placement, result, px_per_mm)))
    return images


def photo_names(sources: list[str]) -> list[str]:
    """A file name per photo source, distinct within the submission: the stem of its name (a zip member's name after
    the colon), the whole name where stems collide, then a count."""
    names = [PurePosixPath(source.split(":")[-1].replace("\\", "/")).name or "photo" for source in sources]
    stems = [Path(name).stem or name for name in names]
    chosen = [stem if stems.count(stem) == 1 else name for stem, name in zip(stems, names)]
    totals, seen = Counter(chosen), Counter()
    for i, name in enumerate(chosen):
        seen[name] += 1
        if totals[name] > 1:
            chosen[i] = f"{name}-{seen[name]}"
    return chosen


def write_previews(result: SubmissionResult, templates: tuple[FormTemplate, ...], grays: list[np.ndarray | None],
                   out: Path, px_per_mm: float = 4.0, as_folder: bool | None = None) -> list[Path]:
    """Each photo's preview as a PNG: `out` named *.png is the file (`<out stem>-<photo>.png` for several photos),
    any other `out` (or any `out` with `as_folder`) is a folder of `<photo>.png`; `<photo>` is the photo's stem, or
    its whole name where two photos share a stem (`x.jpg` and `x.png`), so that no preview overwrites another."""
    images = render_submission_preview(result, templates, grays, px_per_mm)
    names = photo_names([source for source, _ in images])
    if as_folder or out.suffix.lower() != ".png":
        paths = [out / f"{name}.png" for name in names]
    elif len(images) == 1:
        paths = [out]
    else:
        paths = [out.with_name(f"{out.stem}-{name}.png") for name in names]
    for path, (_, image) in zip(paths, images):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")
    return paths

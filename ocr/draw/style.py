"""How previews look: status colours and the value labels' font metrics, shared by the page drawing and its panel.

Colours are RGB (Pillow's order); the rendered images are converted to BGR where they leave ocr/draw.
"""

from __future__ import annotations

from ocr.templates.render import bold_stroke, font

RGB = tuple[int, int, int]

STATUS_RGB: dict[str, RGB] = {"ok": (0, 150, 70), "corrected": (30, 100, 230), "review": (240, 120, 0),
                              "unreadable": (215, 20, 20)}
SUBMISSION_RGB: dict[str, RGB] = {"ok": STATUS_RGB["ok"], "review": STATUS_RGB["review"],
                                  "incomplete": STATUS_RGB["unreadable"], "rejected": STATUS_RGB["unreadable"],
                                  "error": STATUS_RGB["unreadable"]}
NOT_JUDGED_RGB: RGB = (120, 120, 120)  # a field the result does not carry (a result of another submission)
INK_RGB: RGB = (20, 20, 20)
MUTED_RGB: RGB = (95, 95, 95)
WHITE: RGB = (255, 255, 255)


def label_box(text: str, size: int) -> tuple[int, int, int, int, int]:
    """(width, height, padding, glyph left, glyph top) px of a value label in bold at `size`."""
    left, _, right, _ = font(size).getbbox(text, stroke_width=bold_stroke(size))
    _, top, _, bottom = font(size).getbbox("0123456789?", stroke_width=bold_stroke(size))  # one height for all values
    pad = max(2, round(0.16 * size))
    return right - left + 2 * pad, bottom - top + 2 * pad, pad, left, top

"""The preview's side panel: who and what, the verdict, a legend, the failed rules with both sides' values, and
the page's fields to check with their reasons, written top-down in page-scaled text (ocr/draw/preview.py puts it
at the right of the page)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from ocr.draw.placement import PagePlacement
from ocr.draw.style import INK_RGB, MUTED_RGB, RGB, STATUS_RGB, SUBMISSION_RGB, WHITE, label_box
from ocr.record import SubmissionResult, TallyCount
from ocr.templates.render import bold_stroke, font
from ocr.templates.rules import evaluate, parse_rule

_VERDICT = {"ok": "every number passed the checks", "review": "a person must check the marked fields",
            "incomplete": "a page of the form is missing: photograph it",
            "rejected": "a photo was refused: take it again", "error": "the reader failed on this submission"}


def tally_text(tally: TallyCount | None) -> str | None:
    """What a row's tally marks say, for a label: None where they say nothing (no marks, or not a row sum)."""
    if tally is None or tally.status == "none":
        return None
    return "row struck" if tally.status == "struck" else f"tally {tally.count}"


def _wrap(text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap to `width` px; a word longer than the line (a path) is cut."""
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
            continue
        while len(word) > 1 and face.getlength(word) > width:
            cut = next((i for i in range(len(word) - 1, 0, -1) if face.getlength(word[:i]) <= width), 1)
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines


class Column:
    """Text written top-down into a column of an image: wrapped lines, swatches, badges."""

    def __init__(self, image: Image.Image, x: int, y: int, width: int):
        self.draw = ImageDraw.Draw(image)
        self.x, self.y, self.width = x, y, width

    def text(self, text: str, size: int, fill: RGB = INK_RGB, bold: bool = False, indent: int = 0) -> None:
        stroke = bold_stroke(size, bold)
        for line in _wrap(text, font(size), self.width - indent):
            self.draw.text((self.x + indent, self.y), line, fill=fill, font=font(size), stroke_width=stroke,
                           stroke_fill=fill)
            self.y += round(1.25 * size)

    def badge(self, text: str, size: int, fill: RGB) -> None:
        w, h, pad, left, top = label_box(text, size)
        rect = (self.x, self.y, self.x + w + 2 * pad, self.y + h)
        self.draw.rounded_rectangle(rect, radius=pad, fill=fill)
        self.draw.text((self.x + 2 * pad - left, self.y + pad - top), text, fill=WHITE, font=font(size),
                       stroke_width=bold_stroke(size), stroke_fill=WHITE)
        self.y += h + size // 3

    def swatches(self, items: list[tuple[str, RGB]], size: int) -> None:
        x = self.x
        for name, colour in items:
            width = size + size // 3 + round(font(size).getlength(name))
            if x > self.x and x + width > self.x + self.width:
                x, self.y = self.x, self.y + round(1.4 * size)
            self.draw.rectangle((x, self.y + size // 8, x + size, self.y + size + size // 8), fill=colour)
            self.draw.text((x + size + size // 3, self.y), name, fill=INK_RGB, font=font(size))
            x += width + size
        self.y += round(1.6 * size)

    def space(self, px: int) -> None:
        self.y += px


def _sides(rule: str, result: SubmissionResult) -> str | None:
    """'181 vs 171': both sides of a rule with the values read, or None when one of its fields has none."""
    comparison = parse_rule(rule)
    values = {f: r.value for f, r in result.fields.items()}
    if any(values.get(f) is None for f in comparison.field_ids(values)):
        return None
    known = {f: v for f, v in values.items() if v is not None}
    return f"{evaluate(comparison.left, known):g} vs {evaluate(comparison.right, known):g}"


def _write_panel(image: Image.Image, result: SubmissionResult, alignment: PagePlacement, px_per_mm: float) -> int:
    """The side panel's content: who and what, the verdict, a legend, failed rules, the fields to check; its height."""
    body, small, big = round(13 * px_per_mm), round(10.5 * px_per_mm), round(28 * px_per_mm)
    margin = round(8 * px_per_mm)
    col = Column(image, margin, margin, image.width - 2 * margin)
    template, number = alignment.template, alignment.page_number
    source = next((p.source for p in result.pages if p.page == number and p.status == "read"), "")
    col.text(result.submission, body, bold=True)
    col.text(f"{template.id} - page {number} of {len(template.pages)} - {source}", small, MUTED_RGB)
    q = alignment.quality
    col.text(f"photo: {q.markers_found}/4 corner markers, tag {'read' if q.tag_read else 'not read'}, "
             f"sharpness {q.sharpness:.2f}, paper {q.paper_level}/255", small, MUTED_RGB)
    col.space(small)
    col.badge(result.status.upper(), big, SUBMISSION_RGB[result.status])
    col.text(_VERDICT[result.status], small, MUTED_RGB)
    col.space(small)
    col.swatches([(status, colour) for status, colour in STATUS_RGB.items()], small)

    failed = [c for c in result.checks if not c.ok]
    numbering = {c.rule: f"R{i}" for i, c in enumerate(sorted(failed, key=lambda c: not c.hard), 1)}
    for hard in (True, False):
        rules = [c.rule for c in failed if c.hard == hard]
        col.text(f"Failed {'hard' if hard else 'soft'} rules: {len(rules) or 'none'}", body, bold=True,
                 fill=STATUS_RGB["unreadable" if hard and rules else "review" if rules else "ok"])
        for rule in rules:
            col.text(f"{numbering[rule]}  {rule}", small, indent=small)
            sides = _sides(rule, result)
            if sides:
                col.text(sides, small, bold=True, indent=3 * small)
        col.space(small // 2)

    flagged = [f for f in template.page(number).fields if f.id in result.fields and result.fields[f.id].status != "ok"]
    col.space(small // 2)
    col.text(f"Fields to check on this page: {len(flagged) or 'none'}", body, bold=True)
    for field in flagged:
        read = result.fields[field.id]
        value = "?" if read.value is None else str(read.value)
        col.text(f"{field.id} = {value}  ({read.status})", small, STATUS_RGB[read.status], bold=True, indent=small)
        # A failed rule is named by its number above rather than written out again (ocr/reader/verdict.py's wording).
        notes = [f"fails {numbering[r.detail]}" if r.code == "rule_failed" and r.detail in numbering else str(r)
                 for r in read.reasons]
        if read.read_value != read.value:
            notes.append(f"boxes read {read.read_value}")
        if read.alternatives:
            notes.append("other readings: " + ", ".join(str(a.value) for a in read.alternatives))
        tally = tally_text(read.tally)
        if tally:
            notes.append(tally)
        col.text("; ".join(notes), small, MUTED_RGB, indent=3 * small)
    elsewhere = sorted({r.page for r in result.fields.values() if r.status != "ok" and r.page != number})
    if elsewhere:
        count = sum(r.status != "ok" and r.page != number for r in result.fields.values())
        col.space(small // 2)
        col.text(f"Other pages: {count} fields to check (page {', '.join(map(str, elsewhere))})", small, MUTED_RGB)
    refused = [p for p in result.pages if p.status == "refused"]
    if refused:
        col.space(small // 2)
        col.text("Refused photos:", body, STATUS_RGB["unreadable"], bold=True)
        for p in refused:
            col.text(f"{p.source}: {', '.join(e.code for e in p.errors)}", small, indent=small)
    return col.y + margin


def panel(result: SubmissionResult, alignment: PagePlacement, width: int, min_height: int,
           px_per_mm: float) -> Image.Image:
    # A dry run on a one-row image measures the height: Pillow clips what falls outside.
    height = _write_panel(Image.new("RGB", (width, 1)), result, alignment, px_per_mm)
    image = Image.new("RGB", (width, max(min_height, height)), WHITE)
    _write_panel(image, result, alignment, px_per_mm)
    return image

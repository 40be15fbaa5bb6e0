"""Labelled box crops cut exactly as the reader cuts them: synthesise a TPS, photograph it, align, cut.

Used to make the digit classifier's training data and its benchmark sets, so both see what
`formc read` sees: the camera simulation, the aligner's residual error and `cut_boxes`' framing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ocr.reader.align import PageAlignment, align_page, cut_boxes
from ocr.reader.decode import decode_photo
from ocr.reader.digits import CLASSES
from ocr.synth.handwriting import GlyphBank
from ocr.synth.job import SynthJob, synthesize_tps
from ocr.templates.catalog import get_template, load_templates

GLYPH_CLASS = {**{c: CLASSES.index(c) for c in "0123456789X-"}, " ": CLASSES.index("blank")}  # written char -> class


@dataclass
class CropSet:
    """Crops (n, S, S) uint8 with their class index and where each came from."""

    crops: np.ndarray
    labels: np.ndarray
    template: np.ndarray  # template id per crop
    field_id: np.ndarray
    refused_pages: int = 0

    @classmethod
    def concat(cls, parts: list["CropSet"], size_px: int, refused_pages: int = 0) -> "CropSet":
        """One set of all `parts`, copied once (not part by part), plus `refused_pages` more refusals."""
        return cls(np.concatenate([np.zeros((0, size_px, size_px), np.uint8), *(p.crops for p in parts)]),
                   np.concatenate([np.zeros(0, np.uint8), *(p.labels for p in parts)]),
                   np.concatenate([np.zeros(0, "<U32"), *(p.template for p in parts)]),
                   np.concatenate([np.zeros(0, "<U40"), *(p.field_id for p in parts)]),
                   refused_pages + sum(p.refused_pages for p in parts))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, crops=self.crops, labels=self.labels, template=self.template, field_id=self.field_id,
                            refused_pages=self.refused_pages)

    @classmethod
    def load(cls, path: Path) -> "CropSet":
        with np.load(path) as d:
            return cls(d["crops"], d["labels"], d["template"], d["field_id"], int(d["refused_pages"]))


def page_crops(alignment: PageAlignment, photo, glyphs: dict[str, str], size_px: int) -> CropSet:
    """Every box of an aligned page, labelled from the glyphs written in it."""
    parts = []
    for field in alignment.template.page(alignment.page_number).fields:
        if any(c not in GLYPH_CLASS for c in glyphs[field.id]):
            continue  # boxes struck through as unused are no class of the digit reader
        crops = cut_boxes(photo.gray, alignment, field.id, size_px=size_px)
        n = len(crops)
        parts.append(CropSet(crops, np.array([GLYPH_CLASS[c] for c in glyphs[field.id]], np.uint8),
                             np.full(n, alignment.template.id), np.full(n, field.id)))
    return CropSet.concat(parts, size_px)


def tps_crops(job: SynthJob, template_id: str, index: int, bank: GlyphBank, size_px: int = 48) -> CropSet:
    """Synthesise TPS `index` of `template_id`, read its photos back and cut every box."""
    template = get_template(template_id)
    parts, refused = [], 0
    with tempfile.TemporaryDirectory(prefix="formc-crops-") as tmp:
        truth = synthesize_tps(template, index, replace(job, out_dir=Path(tmp), template_id=template_id), bank, False)
        folder = Path(tmp) / truth["submission"]
        for number, name in truth["pages"].items():
            path = folder / name
            photo = decode_photo(path.read_bytes(), str(path))
            alignment = photo and align_page(photo, tuple(load_templates().values()), template_id=template_id,
                                             page_number=int(number))  # a refused decode is falsy and stays
            if not isinstance(alignment, PageAlignment):
                refused += 1
                continue
            parts.append(page_crops(alignment, photo, truth["glyphs"], size_px))
    return CropSet.concat(parts, size_px, refused)

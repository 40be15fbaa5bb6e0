"""Reference-image templates: a scan of a blank form and its boxes in the scan's pixels, turned into a template.

The scan is looked for beside the YAML file and in each folder of FORMC_REFERENCE_IMAGES, by name and sha256;
a valid file whose scan is not on this machine raises `MissingReferenceImage` (the template is unavailable).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image
from pydantic import ValidationError

from ocr.templates.checks import TemplateError, check_template, read_yaml, validation_problems
from ocr.templates.family import expand_rules
from ocr.templates.file import ReferenceFormSpec
from ocr.templates.model import FormTemplate, NumberField, ReferenceImage, TemplatePage

REFERENCE_IMAGES_ENV = "FORMC_REFERENCE_IMAGES"  # folders (os.pathsep-separated) holding reference-image scans


class MissingReferenceImage(TemplateError):
    """A valid reference-image template whose scan is not on this machine: the template is unavailable."""


def reference_image_dirs(path: Path) -> list[Path]:
    """Where a reference file's scans are looked for: beside it, then each folder of FORMC_REFERENCE_IMAGES."""
    extra = [Path(p) for p in os.environ.get(REFERENCE_IMAGES_ENV, "").split(os.pathsep) if p]
    return [path.parent, *extra]


def load_reference_file(path: Path | str) -> FormTemplate:
    """One reference-image template: boxes given in the scan's px (x, y) become page mm through `px_per_mm`.
    MissingReferenceImage when no folder holds a file of the stated name and sha256."""
    path = Path(path)
    source = str(path)
    try:
        spec = ReferenceFormSpec.model_validate(read_yaml(path, "reference_form, pages, rules"))
    except ValidationError as exc:
        raise TemplateError(source, validation_problems(exc)) from exc
    pages, problems, size_mm = [], [], None
    folders = reference_image_dirs(path)
    for page in spec.pages:
        found = [d / page.image for d in folders if (d / page.image).is_file()]
        image = next((p for p in found if hashlib.sha256(p.read_bytes()).hexdigest() == page.sha256), None)
        if image is None:
            why = "has another sha256" if found else "is not found"
            where = ", ".join(map(str, folders))
            raise MissingReferenceImage(source, [f"page {page.number}: reference image {page.image} {why} (looked in "
                                                 f"{where}; set {REFERENCE_IMAGES_ENV})"])
        if page.flattened is not None:
            width_px, height_px = page.flattened.size_px
        else:
            with Image.open(image) as im:
                width_px, height_px = im.size
        size_mm = size_mm or (width_px / page.px_per_mm, height_px / page.px_per_mm)
        fields = []
        for f in page.fields:
            boxes = tuple(tuple(v / page.px_per_mm for v in rect) for rect in f.rects_px())
            fields.append(NumberField(id=f.id, page=page.number, label=f.label, boxes_mm=boxes,
                                      stroke_mm=f.stroke_px / page.px_per_mm))
        flat = page.flattened
        reference = ReferenceImage(path=image, sha256=page.sha256, px_per_mm=page.px_per_mm,
                                   flattened_corners_px=flat.corners_px if flat else None,
                                   flattened_size_px=flat.size_px if flat else None)
        pages.append(TemplatePage(number=page.number, reference=reference, titles=tuple(page.titles), fields=tuple(fields)))
    template = FormTemplate(id=spec.reference_form, family=spec.reference_form, version=spec.version,
                            description=spec.description, page_size_mm=size_mm, columns=(), pages=tuple(pages),
                            rules=tuple(expand_rules([r for r in spec.rules if not r.proposed], [], {}, problems)),
                            proposed_rules=tuple(expand_rules([r for r in spec.rules if r.proposed], [], {}, problems)))
    check_template(template, source, problems)
    if problems:
        raise TemplateError(source, problems)
    return template

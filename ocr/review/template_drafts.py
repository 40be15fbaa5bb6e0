"""An admin's template drafts: a scan learned (`ocr.learn`), its fields and rules edited by a person, saved as an own
template file into the folder the catalogue reads (FORMC_TEMPLATES), and tried on a filled photo.

A draft is a folder `<root>/<id>/`: the scan as uploaded, the page as learned (`page.png`, rectified at
LEARN_PX_PER_MM: what the editor draws the boxes on) and `draft.json` (`Draft`): what was learned, kept unchanged to
tell what a person edited, and the fields and rules as edited now. A draft is written as a template file through
`ocr.learn.write` into its `staged/` folder first and loaded back with the shipped loaders, so a file that does not
validate, or clashes with a template of the catalogue, never reaches the folder the reader loads.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ocr.draw.preview import render_submission_preview
from ocr.learn.fields import LearnedField
from ocr.learn.learn import LearnedPage, LearnSettings, learn_page
from ocr.learn.page import NotLearned, PageFrame, PageTag, flat_page
from ocr.learn.write import EDITOR_HEADER, template_document, write_document
from ocr.pipeline import PhotoInput, ReaderSettings, read_submission_and_photos
from ocr.reader.decode import decode_photo
from ocr.record import SubmissionResult
from ocr.templates.catalog import load_templates, reload_templates
from ocr.templates.checks import TemplateError, check_unique
from ocr.templates.model import FormTemplate, Markers, RectMM

DRAFT_ID = re.compile(r"[A-Za-z0-9_-]{16}")
TEMPLATE_ID = re.compile(r"[a-z0-9-]+")  # as `formc template learn --name`: also the file's name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DraftField(_Model):
    id: str = Field(max_length=80)  # checked on saving, with everything else, by the template loaders
    label: str = Field("", max_length=300)
    boxes_mm: list[RectMM] = Field(min_length=1, max_length=8)
    stroke_mm: float = Field(gt=0)


class DraftRule(_Model):
    expr: str = Field(max_length=500)
    accepted: bool = False  # accepted or written by a person: a rule; else proposed, never checked


class DraftEdit(_Model):
    """What the editor sends: the template's id, name and page number, its fields and rules as they are now."""

    template_id: str = Field(max_length=64)
    description: str = Field("", max_length=200)
    page: int = Field(ge=1, le=99)
    fields: list[DraftField] = Field(max_length=400)
    rules: list[DraftRule] = Field(max_length=400)


class FrameSpec(_Model):
    """The learned `PageFrame`, kept to write the file: page mm -> scan px, and the markers and tag found."""

    homography: list[list[float]]
    page_size_mm: tuple[float, float]
    markers: Markers | None
    tag: tuple[int, RectMM, int] | None  # tag id, rect, rotation


class Draft(DraftEdit):
    id: str
    scan: str  # the scan's file name in the draft's folder
    px_per_mm: float | None  # a flat scan's scale (given as its DPI), or a flattened photo's; None for a marker photo
    flattened: dict | None = None  # a photo of a sheet without markers: its corners and scan size (FlattenedSpec)
    frame: FrameSpec
    learned_fields: list[DraftField]
    learned_rules: list[str]
    saved_to: str = ""  # the template file it was last saved as


def _moved(a: DraftField, b: DraftField) -> bool:
    """The same boxes less than a box away: one field moved."""
    (ax, ay, aw, ah), (bx, by, _, _) = a.boxes_mm[0], b.boxes_mm[0]
    return len(a.boxes_mm) == len(b.boxes_mm) and abs(ax - bx) < aw and abs(ay - by) < ah


def edited_by_person(draft: Draft) -> list[str]:
    """What a person changed of what was learned, in words for the file: each field matched to the learned one with
    the same boxes, else the same id, else the same boxes moved; rules accepted, written or removed."""
    out = []
    unmatched = list(draft.learned_fields)
    for field in draft.fields:
        was = next((f for f in unmatched if f.boxes_mm == field.boxes_mm), None) or next(
            (f for f in unmatched if f.id == field.id), None) or next((f for f in unmatched if _moved(f, field)), None)
        if was is None:
            out.append(f"field {field.id}: added")
            continue
        unmatched.remove(was)
        changed = [what for what, differs in (("id (was " + was.id + ")", was.id != field.id),
                                              ("label", was.label != field.label),
                                              ("boxes", was.boxes_mm != field.boxes_mm)) if differs]
        if changed:
            out.append(f"field {field.id}: {', '.join(changed)}")
    out += [f"field {f.id}: removed" for f in unmatched]
    current = {r.expr: r for r in draft.rules}
    out += [f"rule {r.expr}: {'accepted' if r.expr in draft.learned_rules else 'written'}" for r in draft.rules
            if r.accepted]
    out += [f"rule {expr}: removed" for expr in draft.learned_rules if expr not in current]
    return out


@dataclass(frozen=True)
class Tried:
    result: SubmissionResult
    preview: Path | None  # the page drawn with each value beside its boxes, or the refusal (None: an error)


def _scan_name(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return "scan" + (suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else "")


def _fields(learned: LearnedPage) -> list[DraftField]:
    return [DraftField(id=f.id, label=f.label, boxes_mm=list(f.boxes_mm), stroke_mm=f.stroke_mm) for f in learned.fields]


class TemplateDrafts:
    """The drafts kept under `root`; templates are saved into `own_folder` (a folder of FORMC_TEMPLATES)."""

    def __init__(self, root: Path, own_folder: Path) -> None:
        self.root, self.own_folder = root, own_folder

    def folder(self, draft_id: str) -> Path:
        return self.root / draft_id

    def learn(self, data: bytes, filename: str, settings: LearnSettings, template_id: str, description: str,
              page: int, sheet_mm: tuple[float, float] | None = None, turn_deg: int = 0) -> Draft | NotLearned:
        """A new draft from an uploaded scan or photo (1-3 s: run it off the event loop); `sheet_mm` (w, h): a photo
        of a sheet without markers, flattened by its outline and turned `turn_deg` clockwise (`--page-mm`)."""
        photo = decode_photo(data, filename)
        if not photo:
            return NotLearned(photo.message)
        gray, flattened = photo.gray, None
        if sheet_mm is not None:
            flat = flat_page(gray, sheet_mm, turn_deg)
            if not flat:
                return flat
            gray, settings = flat.image, replace(settings, px_per_mm=flat.px_per_mm, marker_square_mm=None)
            flattened = flat.spec()
        learned = learn_page(gray, settings)
        if not learned:
            return learned
        frame = learned.frame
        tag = (frame.tag.tag_id, frame.tag.rect_mm, frame.tag.rotation_deg) if frame.tag else None
        fields = _fields(learned)
        draft = Draft(id=secrets.token_urlsafe(12), scan=_scan_name(filename), px_per_mm=settings.px_per_mm,
                      flattened=flattened, template_id=template_id, description=description, page=page, fields=fields,
                      rules=[DraftRule(expr=expr) for expr in learned.rules],
                      frame=FrameSpec(homography=frame.page_homography.tolist(), page_size_mm=frame.page_size_mm,
                                      markers=frame.markers, tag=tag),
                      learned_fields=fields, learned_rules=list(learned.rules))
        folder = self.folder(draft.id)
        folder.mkdir(parents=True)
        (folder / draft.scan).write_bytes(data)
        if not cv2.imwrite(str(folder / "page.png"), learned.page):
            raise OSError(f"cannot write {folder / 'page.png'}")
        self._write(draft)
        return draft

    def _write(self, draft: Draft) -> None:
        path = self.folder(draft.id) / "draft.json"
        path.with_suffix(".tmp").write_text(draft.model_dump_json(), encoding="utf-8")
        path.with_suffix(".tmp").replace(path)  # a reader never sees half a draft

    def get(self, draft_id: str) -> Draft | None:
        path = self.folder(draft_id) / "draft.json"
        if not DRAFT_ID.fullmatch(draft_id) or not path.is_file():
            return None
        return Draft.model_validate_json(path.read_text(encoding="utf-8"))

    def recent(self, limit: int = 20) -> list[Draft]:
        """The newest drafts first."""
        paths = sorted(self.root.glob("*/draft.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
        return [Draft.model_validate_json(p.read_text(encoding="utf-8")) for p in paths]

    def own_files(self) -> list[Path]:
        return sorted(self.own_folder.glob("*.yaml"))

    def update(self, draft: Draft, edit: DraftEdit) -> Draft:
        updated = Draft.model_validate({**draft.model_dump(), **edit.model_dump()})
        self._write(updated)
        return updated

    def _learned_page(self, draft: Draft) -> LearnedPage:
        spec = draft.frame
        tag = PageTag(spec.tag[0], spec.tag[1], spec.tag[2]) if spec.tag else None
        frame = PageFrame(np.array(spec.homography), spec.page_size_mm, spec.markers, tag)
        # An edited field has no reading-order row or column; the writers use neither.
        fields = tuple(LearnedField(id=f.id, label=f.label, row=0, col=0, boxes_mm=tuple(f.boxes_mm),
                                    stroke_mm=f.stroke_mm) for f in draft.fields)
        page = cv2.imread(str(self.folder(draft.id) / "page.png"), cv2.IMREAD_GRAYSCALE)
        return LearnedPage(frame=frame, page=page, bend=None, boxes=(), fields=fields,
                           rules=tuple(r.expr for r in draft.rules if not r.accepted))

    def staged(self, draft: Draft) -> tuple[FormTemplate, Path]:
        """The draft written as a template file in its `staged/` folder and loaded back: the template and the file.
        TemplateError with every problem: the file's (through the shipped loaders), and clashes with the catalogue
        (a template's id or page tag), the template this draft replaces left out."""
        source = f"{draft.template_id}.yaml"
        problems = [] if TEMPLATE_ID.fullmatch(draft.template_id) else [
            f"template id {draft.template_id!r}: lower-case letters, digits and '-' only"]
        if not draft.fields:
            problems.append("no fields: a template reads at least one number")
        if problems:
            raise TemplateError(source, problems)
        staged = self.folder(draft.id) / "staged"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        scan = staged / f"{draft.template_id}{Path(draft.scan).suffix}"
        shutil.copyfile(self.folder(draft.id) / draft.scan, scan)
        document = template_document({draft.page: self._learned_page(draft)}, draft.template_id, [scan],
                                     draft.px_per_mm, [r.expr for r in draft.rules if r.accepted], draft.flattened)
        if not document:
            raise TemplateError(source, [document.message])
        document["description"] = draft.description or document["description"]
        document["edited_by_person"] = edited_by_person(draft)
        out = staged / source
        template = write_document(document, out, EDITOR_HEADER.format(scan=draft.scan), scan)
        replaced = self.own_folder / source
        others = [t for t in load_templates().values() if t.id != template.id or not replaced.exists()]
        check_unique([*others, template], problems)
        if problems:
            raise TemplateError(source, problems)
        return template, out

    def save(self, draft: Draft) -> Path:
        """The draft saved as `<template id>.yaml` (and, for a reference-image template, its scan beside it) in the
        own folder, the catalogue read again; the file's path. TemplateError with every problem, nothing written."""
        template, staged = self.staged(draft)
        self.own_folder.mkdir(parents=True, exist_ok=True)
        if template.by_reference:
            scan = staged.with_suffix(Path(draft.scan).suffix)
            shutil.copyfile(scan, self.own_folder / scan.name)
        out = self.own_folder / staged.name
        shutil.copyfile(staged, out.with_suffix(".tmp"))
        out.with_suffix(".tmp").replace(out)  # the catalogue never reads half a file
        reload_templates()
        self._write(draft.model_copy(update={"saved_to": str(out)}))
        return out

    def try_photo(self, draft: Draft, data: bytes, filename: str) -> Tried:
        """A filled photo read with the draft as it is now (staged: TemplateError when it does not validate); the
        result and its preview are kept in the draft's folder (`tried`)."""
        template, _ = self.staged(draft)
        folder = self.folder(draft.id)
        result, grays = read_submission_and_photos([PhotoInput(filename, data, hashlib.sha256(data).hexdigest())],
                                                   (template,), ReaderSettings(template_id=template.id),
                                                   submission=f"coba/{template.id}")
        preview = folder / "coba.jpg"
        preview.unlink(missing_ok=True)
        try:
            (_, image), = render_submission_preview(result, (template,), grays)
            cv2.imwrite(str(preview), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        except ValueError:  # an error record (a bug, in the log) has no page to draw
            pass
        (folder / "coba.json").write_text(result.model_dump_json(), encoding="utf-8")
        return self.tried(draft)

    def tried(self, draft: Draft) -> Tried | None:
        """The last photo tried with the draft, or None."""
        folder = self.folder(draft.id)
        if not (folder / "coba.json").is_file():
            return None
        result = SubmissionResult.model_validate_json((folder / "coba.json").read_text(encoding="utf-8"))
        preview = folder / "coba.jpg"
        return Tried(result, preview if preview.is_file() else None)

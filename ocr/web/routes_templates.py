"""The template editor (admin): a blank form's scan learned into a draft, its fields and rules edited on the page
(`static/template_editor.js` sends the whole draft as JSON), saved as an own template file the reader uses at once,
and tried on a filled photo. The work is `ocr.review.template_drafts`'s; this module reads the forms and draws pages.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from ocr.learn.learn import LearnSettings
from ocr.learn.page import NotLearned
from ocr.review.template_drafts import TEMPLATE_ID, Draft, DraftEdit, TemplateDrafts, edited_by_person
from ocr.templates.catalog import own_folders
from ocr.templates.checks import TemplateError
from ocr.web.auth import guard
from ocr.web.i18n import translate
from ocr.web.pages import flash, image, read_photo, render, reviews_of


def drafts_of(request: Request) -> TemplateDrafts:
    return request.app.state.template_drafts


def _read(request: Request) -> bool:
    """Whether the catalogue reads the folder the editor saves into (it is a folder of FORMC_TEMPLATES)."""
    folder = drafts_of(request).own_folder.resolve()
    return folder in [f.resolve() for f in own_folders()]


def _home(request: Request, status_code: int = 200, error: str | None = None, form: dict | None = None) -> Response:
    drafts = drafts_of(request)
    return render(request, "templates.html", status_code, error=error, form=form or {}, drafts=drafts.recent(),
                  own=drafts.own_files(), folder=drafts.own_folder, read=_read(request))


async def _photo(request: Request, upload: object) -> bytes | str:
    """The uploaded image's bytes, or why it is refused (in the request's language)."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        return translate(request, "Choose the scan or photo of the form's page.")
    data = await read_photo(request, upload)
    return data[0] if isinstance(data, tuple) else data


def _positive(text: str) -> float | None:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if value > 0 else None


@guard("admin")
async def home(request: Request) -> Response:
    """The own templates and recent drafts; POST: a scan learned into a new draft, then its editor."""
    if request.method == "GET":
        return _home(request)
    form = await request.form()
    fields = {k: str(form.get(k, "")).strip()
              for k in ("template_id", "description", "page", "dpi", "marker_mm", "sheet_mm", "turn")}
    dpi, marker_mm = _positive(fields["dpi"]), _positive(fields["marker_mm"])
    sheet = re.fullmatch(r"(\d+(?:[.,]\d+)?)\s*[xX×]\s*(\d+(?:[.,]\d+)?)", fields["sheet_mm"])
    sheet_mm = tuple(float(v.replace(",", ".")) for v in sheet.groups()) if sheet else None
    page = int(fields["page"]) if fields["page"].isdigit() and 0 < int(fields["page"]) < 100 else None
    if [dpi, marker_mm, sheet_mm].count(None) != 2 or fields["turn"] not in ("", "0", "90", "180", "270"):
        return _home(request, 400, translate(request, "Give one of: the scan's resolution (DPI); for a photo, the side "
                                             "of one corner-marker square in mm; or, for a photo of a form without "
                                             "markers, the sheet's size in mm (e.g. 600x900)."), fields)
    if page is None or not TEMPLATE_ID.fullmatch(fields["template_id"]):
        return _home(request, 400, translate(request, "Give the template id (lower-case letters, digits and '-') and "
                                             "the page number."), fields)
    upload = form.get("scan")
    data = await _photo(request, upload)
    if isinstance(data, str):
        return _home(request, 400, data, fields)
    settings = LearnSettings(px_per_mm=dpi / 25.4 if dpi else None, marker_square_mm=marker_mm,
                             read_labels=form.get("labels") == "1")
    draft = await run_in_threadpool(drafts_of(request).learn, data, upload.filename, settings, fields["template_id"],
                                    fields["description"], page, sheet_mm, int(fields["turn"] or 0))  # 1-3 s: off the loop
    if isinstance(draft, NotLearned):
        return _home(request, 422, translate(request, "No template could be learned from this image:") + " "
                     + draft.message, fields)
    return RedirectResponse(f"/admin/templat/draft/{draft.id}", status_code=303)


def _draft(request: Request) -> Draft | Response:
    found = drafts_of(request).get(request.path_params["draft_id"])
    return found if found is not None else PlainTextResponse(translate(request, "No such template draft."),
                                                             status_code=404)


def _editor(request: Request, draft: Draft, status_code: int = 200, problems: list[str] | None = None,
            error: str | None = None) -> Response:
    return render(request, "template_editor.html", status_code, draft=draft, problems=problems or [], error=error,
                  tried=drafts_of(request).tried(draft), read=_read(request),
                  draft_json=draft.model_dump(include=set(DraftEdit.model_fields)))


@guard("admin")
async def editor(request: Request) -> Response:
    """The editor page; POST (JSON, the page's script): the draft as edited now, kept."""
    draft = _draft(request)
    if isinstance(draft, Response):
        return draft
    if request.method == "GET":
        return _editor(request, draft)
    try:
        edit = DraftEdit.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"problems": [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]},
                            status_code=400)
    drafts_of(request).update(draft, edit)
    return JSONResponse({"saved": True})


@guard("admin")
async def page_image(request: Request) -> Response:
    draft = _draft(request)
    if isinstance(draft, Response):
        return draft
    return image(request, drafts_of(request).folder(draft.id) / "page.png", "image/png")


@guard("admin")
async def tried_image(request: Request) -> Response:
    draft = _draft(request)
    if isinstance(draft, Response):
        return draft
    return image(request, drafts_of(request).folder(draft.id) / "coba.jpg", "image/jpeg", cache="no-store")


@guard("admin")
async def save(request: Request) -> Response:
    """The draft saved into the own templates' folder, the catalogue read again; or every problem at once."""
    draft = _draft(request)
    if isinstance(draft, Response):
        return draft
    try:
        path = await run_in_threadpool(drafts_of(request).save, draft)
    except TemplateError as exc:
        return _editor(request, draft, 422, exc.problems)
    reviews_of(request).log(request.state.user, "template_save", template=draft.template_id, file=str(path),
                            edited_by_person=edited_by_person(draft))
    flash(request, translate(request, "Template %(id)s saved as %(path)s: the reader uses it from now on.",
                             id=draft.template_id, path=str(path)))
    return RedirectResponse(f"/admin/templat/draft/{draft.id}", status_code=303)


@guard("admin")
async def try_photo(request: Request) -> Response:
    """A filled photo read with the draft as it is now; its result is shown on the editor page."""
    draft = _draft(request)
    if isinstance(draft, Response):
        return draft
    upload = (await request.form()).get("photo")
    data = await _photo(request, upload)
    if isinstance(data, str):
        return _editor(request, draft, 400, error=data)
    try:
        await run_in_threadpool(drafts_of(request).try_photo, draft, data, upload.filename)
    except TemplateError as exc:
        return _editor(request, draft, 422, exc.problems)
    return RedirectResponse(f"/admin/templat/draft/{draft.id}#coba", status_code=303)

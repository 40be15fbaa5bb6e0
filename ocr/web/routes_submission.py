"""A stored submission: its page (values and statuses), the drawn page and field images, the uploaded photos."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ocr.run.photo_store import FIELD_ID, SHA, sniff
from ocr.web.auth import guard
from ocr.web.i18n import translate
from ocr.web.pages import REVIEWERS, UPLOADERS, drawn, image, render, statuses, view_for


@guard(*UPLOADERS)
async def submission(request: Request) -> Response:
    view = view_for(request)
    if isinstance(view, Response):
        return view
    return render(request, "submission.html", view=view, statuses=statuses(view))


@guard(*UPLOADERS)
async def page_image(request: Request) -> Response:
    view = view_for(request)
    if isinstance(view, Response):
        return view
    return await drawn(request, view, f"page-{request.path_params['n']}.jpg")


@guard(*REVIEWERS)
async def field_image(request: Request) -> Response:
    view = view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    field_id, kind = request.path_params["field_id"], request.path_params["kind"]
    if kind not in ("boxes", "region") or not FIELD_ID.fullmatch(field_id) or field_id not in view.result.fields:
        return PlainTextResponse(translate(request, "No such image."), status_code=404)
    return await drawn(request, view, f"{kind}-{field_id}.jpg")


@guard(*UPLOADERS)
async def photo(request: Request) -> Response:
    view = view_for(request)
    if isinstance(view, Response):
        return view
    sha = request.path_params["sha"]
    if not SHA.fullmatch(sha) or sha not in {p.sha256 for p in view.result.pages}:
        return PlainTextResponse(translate(request, "No such photo in this submission."), status_code=404)
    path = request.app.state.photos.photo_path(sha)
    if not path.exists():
        return image(request, path, "")
    with path.open("rb") as f:
        media_type = sniff(f.read(32))
    return image(request, path, media_type or "application/octet-stream")

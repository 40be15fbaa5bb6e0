"""What every route module shares: rendering a page, the app's reviews, a flash message, the submission in the URL.

Pages are rendered on the server (Jinja2, `ocr/web/templates/`); every page gets the user, the session's
CSRF token, the flash message of the previous action, the request's language (`ocr/web/i18n.py`) and the server's
time zone (`ocr/web/local_time.py`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.templating import Jinja2Templates

from ocr.review.accounts import ROLES, User
from ocr.review.errors import ReviewError
from ocr.review.sessions import now
from ocr.review.throttle import Throttled
from ocr.review.workflow import Reviews, SubmissionView
from ocr.run.inputs import MAX_PHOTO_BYTES
from ocr.run.photo_store import sniff
from ocr.templates.catalog import load_templates
from ocr.web import i18n, local_time
from ocr.web.auth import csrf_token
from ocr.web.i18n import LANGUAGES, catalog, language_of, translate
from ocr.web.rule_words import rule_words

HERE = Path(__file__).resolve().parent
REVIEWERS = ("reviewer", "admin")
UPLOADERS = ROLES
PRIVATE = "private, max-age=3600"  # an image behind log-in: only the logged-in browser may keep it

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
i18n.install(_env)
local_time.install(_env)
_env.filters["rule_words"] = rule_words
templates = Jinja2Templates(env=_env)
log = logging.getLogger(__name__)


def _page(request: Request, template: str, status_code: int, context: dict[str, Any]) -> Response:
    language = language_of(request)
    context.update(i18n=catalog(language), language=language, languages=LANGUAGES, zone=request.app.state.zone)
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def render_public(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page of the public results site: no user, no session (no cookie is set), no flash message."""
    return _page(request, template, status_code, context)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    context.update(user=request.state.user, csrf=csrf_token(request), flash=request.session.pop("flash", None))
    return _page(request, template, status_code, context)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """A database that cannot be reached or written (read-only, full disk, down): a plain 503 page for whoever asked;
    the statement and the driver's message go to the server's log only."""
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return _page(request, "unavailable.html", 503, {"user": None, "csrf": "", "flash": None})


def too_many_attempts(request: Request, refusal: Throttled, template: str, **context: Any) -> Response:
    """`template` answered with 429 and a message saying for how long log-ins are refused."""
    seconds = max(60, math.ceil((refusal.until - now()).total_seconds()))
    minutes = math.ceil(seconds / 60)
    error = translate(request, "Too many failed log-ins for this account. For safety, try again in %(minutes)s "
                      "minutes.", minutes=minutes) if refusal.scope == "account" else translate(
        request, "Too many failed log-ins from this network address. For safety, try again in %(minutes)s minutes.",
        minutes=minutes)
    response = render(request, template, 429, error=error, **context)
    response.headers["Retry-After"] = str(seconds)
    return response


def explained(request: Request, refusal: ReviewError) -> str:
    """Why a review action was refused, in the request's language."""
    return translate(request, refusal.message, **refusal.params)


def reviews_of(request: Request) -> Reviews:
    return request.app.state.reviews


def flash(request: Request, message: str) -> None:
    request.session["flash"] = message


def view_for(request: Request, reviewers_only: bool = False) -> SubmissionView | Response:
    """The submission in the URL, when this user may see it: reviewers and admins all, operators their uploads."""
    user: User = request.state.user
    submission_id = request.path_params["sid"]
    if user.role not in REVIEWERS and (reviewers_only or not reviews_of(request).has_uploaded(user, submission_id)):
        return PlainTextResponse(translate(request, "Your role may not open this submission."), status_code=403)
    view = reviews_of(request).view(submission_id)
    return view if view is not None else PlainTextResponse(translate(request, "No such submission."), status_code=404)


def statuses(view: SubmissionView) -> dict[str, str]:
    """Each field's status as shown: `corrected` once a reviewer set its value."""
    corrected = view.corrected
    return {f: "corrected" if f in corrected else r.status for f, r in view.result.fields.items()}


async def drawn(request: Request, view: SubmissionView, name: str, cache: str = PRIVATE) -> Response:
    """A drawn image of the submission; a read that drew none (a batch's) is drawn now, off the event loop."""
    path = await run_in_threadpool(request.app.state.photos.drawn, view.result, tuple(load_templates().values()), name)
    return image(request, path, "image/jpeg", cache)


def image(request: Request, path: Path, media_type: str, cache: str = PRIVATE) -> Response:
    if not path.exists():
        return PlainTextResponse(translate(request, "This image cannot be drawn: its photos are not in the photo store "
                                                    "(read by formc batch without --store)."), status_code=404)
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": cache})


async def read_photo(request: Request, upload: UploadFile) -> bytes | tuple[str, int]:
    """An uploaded photo's bytes, or why it is refused (in the request's language) and the HTTP status saying so."""
    data = await upload.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        return translate(request, "%(file)s: larger than %(mb)s MB; send the camera's photo as it is.",
                         file=upload.filename, mb=MAX_PHOTO_BYTES // 2**20), 413
    if sniff(data[:32]) is None:
        return translate(request, "%(file)s: not a photo (JPEG, PNG, WebP or HEIC). Take a photo of the page and send "
                         "that.", file=upload.filename), 415
    return data

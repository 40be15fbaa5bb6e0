"""Log-in, log-out, the home page that sends each role to its first page, and the choice of language."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ocr.review.accounts import log_in
from ocr.review.throttle import Throttled
from ocr.web.auth import client_address, guard, session_id_of, set_session
from ocr.web.i18n import LANGUAGE_COOKIE, LANGUAGES, translate
from ocr.web.pages import render, reviews_of, too_many_attempts

LANGUAGE_DAYS = 365  # a browser keeps its language until it is switched again


def _next_path(value: str | None) -> str:
    # Only a local path: an open redirect would send a fresh log-in elsewhere.
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


@guard(login=False)
async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", next=_next_path(request.query_params.get("next")))
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    next_path = _next_path(str(form.get("next", "")))
    try:
        # argon2 costs tens of ms of CPU by design: in a worker thread, so other users' pages do not wait for it.
        found = await run_in_threadpool(log_in, reviews_of(request), name, password, client_address(request))
    except Throttled as refusal:
        return too_many_attempts(request, refusal, "login.html", next=next_path)
    if found is None:
        return render(request, "login.html", 401, next=next_path, error=translate(request, "Wrong user name or password."))
    set_session(request, found[1])
    return RedirectResponse(next_path, status_code=303)


@guard()
async def logout(request: Request) -> Response:
    reviews_of(request).end_session(session_id_of(request), request.state.user)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@guard()
async def home(request: Request) -> Response:
    role = request.state.user.role
    return RedirectResponse({"operator": "/upload", "reviewer": "/queue"}.get(role, "/dashboard"), status_code=303)


@guard(login=False)
async def language(request: Request) -> Response:
    """Switches this browser's language (a cookie, so it holds across log-ins) and goes back to the page it was on."""
    form = await request.form()
    response = RedirectResponse(_next_path(str(form.get("next", ""))), status_code=303)
    chosen = str(form.get("language", ""))
    if chosen in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=LANGUAGE_DAYS * 86400, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
    return response

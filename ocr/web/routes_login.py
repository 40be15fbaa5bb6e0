"""Log-in, log-out, and the home page that sends each role to its first page."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ocr.review.accounts import authenticate
from ocr.web.auth import guard, log_in
from ocr.web.pages import render, reviews_of


def _next_path(value: str | None) -> str:
    # Only a local path: an open redirect would send a fresh log-in elsewhere.
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


@guard(login=False)
async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", next=_next_path(request.query_params.get("next")))
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    # argon2 costs tens of ms of CPU by design: in a worker thread, so other users' pages do not wait for it.
    user = await run_in_threadpool(authenticate, reviews_of(request), name, password)
    if user is None:
        reviews_of(request).log(None, "login_failed", name=name[:100])
        return render(request, "login.html", 401, next=_next_path(str(form.get("next", ""))),
                      error="wrong user name or password")
    log_in(request, user)
    reviews_of(request).log(user, "login")
    return RedirectResponse(_next_path(str(form.get("next", ""))), status_code=303)


@guard()
async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@guard()
async def home(request: Request) -> Response:
    role = request.state.user.role
    return RedirectResponse({"operator": "/upload", "reviewer": "/queue"}.get(role, "/dashboard"), status_code=303)

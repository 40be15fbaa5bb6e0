"""Request guards: the session's user, CSRF tokens, role checks (accounts and password hashes: `ocr.review.accounts`).

The cookie is Starlette's signed session (itsdangerous; HttpOnly, SameSite=Lax, Secure behind HTTPS) holding
only a random session id and a CSRF token; the session and its user are looked up in the database on every
request (`Accounts.session_user`), so log-out, deactivation, a role or password change end it at once, for every
copy of the cookie. Every endpoint goes through `guard`:
no log-in -> redirect to the log-in page (401 for non-GET), wrong role -> 403, an unsafe method
without the session's CSRF token in the form (or the X-CSRF-Token header) -> 403.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ocr.review.accounts import User
from ocr.web.i18n import translate

FORM_MAX_FILES = 10  # more than the photos of a TPS (ocr/web/routes_upload.py MAX_PHOTOS says how many are taken)
FORM_MAX_FIELDS = 200  # the review form: one input per field of the largest template, and a few more
Endpoint = Callable[[Request], Awaitable[Response]]


def load_secret(secret: str | None, store_dir: Path) -> str:
    """The cookie signing key: given, else $FORMC_SECRET, else `<store>/secret.key` (made once, mode 0600)."""
    secret = secret or os.environ.get("FORMC_SECRET")
    if secret:
        return secret
    path = store_dir / "secret.key"
    if not path.exists():
        store_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (also for the log-in form of an anonymous visitor)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def set_session(request: Request, session_id: str) -> None:
    # A fresh cookie (new CSRF token) at log-in: nothing from before it carries over.
    request.session.clear()
    request.session.update(sid=session_id, csrf=secrets.token_urlsafe(32))


def session_id_of(request: Request) -> str | None:
    sid = request.session.get("sid")
    return sid if isinstance(sid, str) else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def current_user(request: Request) -> User | None:
    sid = session_id_of(request)
    user = request.app.state.reviews.session_user(sid) if sid else None
    if sid and user is None:
        request.session.pop("sid")  # ended: the browser need not send it again
    return user


async def _csrf_ok(request: Request) -> bool:
    expected = request.session.get("csrf")
    if not expected:
        return False
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        # Parsed once, here, with the app's limits; the endpoint gets the same cached form.
        form = await request.form(max_files=FORM_MAX_FILES, max_fields=FORM_MAX_FIELDS)
        sent = form.get("csrf")
    return isinstance(sent, str) and hmac.compare_digest(sent, expected)


def guard(*roles: str, login: bool = True) -> Callable[[Endpoint], Endpoint]:
    """Wraps an endpoint: log-in (unless `login=False`) and one of `roles` (any when none) required; CSRF on
    unsafe methods. The user is in `request.state.user` (None on a public page)."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = current_user(request)
            request.state.user = user
            if login and user is None:
                if request.method != "GET":
                    return PlainTextResponse(translate(request, "Log in first."), status_code=401)
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            if roles and (user is None or user.role not in roles):
                return PlainTextResponse(translate(request, "Your role may not open this page."), status_code=403)
            if request.method not in ("GET", "HEAD"):
                try:
                    fresh = await _csrf_ok(request)
                except HTTPException as exc:  # the form parser's own limits: Starlette's words are English
                    return PlainTextResponse(translate(
                        request, "Too many files or fields in one form: send only the pages of one TPS."),
                        status_code=exc.status_code)
                if not fresh:
                    return PlainTextResponse(translate(request, "The form has expired: reload the page and try again."),
                                             status_code=403)
            return await endpoint(request)

        return guarded

    return wrap

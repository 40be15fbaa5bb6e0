"""Accounts in the app: the admin's list of users (deactivate or activate, role, password reset) and each user's own
password change. Every change is a POST with the CSRF token, logged by `ocr.review.accounts`, and ends the sessions
it must there."""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ocr.review.accounts import MIN_PASSWORD, ROLES, change_password, generate_password, hash_password
from ocr.review.errors import LastAdmin, NoSuchUser, ReviewError
from ocr.review.throttle import Throttled
from ocr.web.auth import client_address, guard, session_id_of
from ocr.web.i18n import ROLE_LABELS, translate
from ocr.web.pages import explained, flash, render, reviews_of, too_many_attempts


def _users_page(request: Request, status_code: int = 200, error: str | None = None) -> Response:
    return render(request, "users.html", status_code, accounts=reviews_of(request).accounts(), roles=ROLES, error=error)


def _refused(request: Request, change: Callable[[], None]) -> Response | None:
    """Applies `change` to the user in the URL: None when done, else the list saying why not."""
    try:
        change()
    except NoSuchUser as exc:
        return _users_page(request, 404, explained(request, exc))
    except LastAdmin as exc:
        return _users_page(request, 409, explained(request, exc))
    except ReviewError as exc:
        return _users_page(request, 422, explained(request, exc))
    return None


def _done(request: Request, message: str) -> Response:
    flash(request, message)
    return RedirectResponse("/admin/users", status_code=303)


@guard("admin")
async def users(request: Request) -> Response:
    return _users_page(request)


@guard("admin")
async def user_active(request: Request) -> Response:
    active = (await request.form()).get("active") == "1"
    name = request.path_params["name"]
    refused = _refused(request, lambda: reviews_of(request).set_active(name, active, request.state.user))
    return refused or _done(request, translate(request, "Account %(name)s activated.", name=name) if active else
                            translate(request, "Account %(name)s deactivated; its sessions were ended.", name=name))


@guard("admin")
async def user_role(request: Request) -> Response:
    role = str((await request.form()).get("role", ""))
    name = request.path_params["name"]
    refused = _refused(request, lambda: reviews_of(request).set_role(name, role, request.state.user))
    role_name = translate(request, ROLE_LABELS[role]) if role in ROLE_LABELS else role
    return refused or _done(request, translate(request, "%(name)s is now %(role)s; their sessions were ended.",
                                               name=name, role=role_name))


@guard("admin")
async def user_password(request: Request) -> Response:
    """A new password made here and shown once, on this page only (never in the cookie or a redirect)."""
    name = request.path_params["name"]
    password = generate_password()
    password_hash = await run_in_threadpool(hash_password, password)  # argon2: off the event loop
    refused = _refused(request, lambda: reviews_of(request).reset_password(name, password_hash, request.state.user))
    return refused or render(request, "password_reset.html", name=name, password=password)


@guard()
async def own_password(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "password.html")
    form = await request.form()
    old, new = str(form.get("old", "")), str(form.get("new", ""))
    if new != form.get("again"):
        return render(request, "password.html", 422, error=translate(request, "The new password and its repetition "
                                                                     "differ."))
    if len(new) < MIN_PASSWORD:
        return render(request, "password.html", 422, error=translate(
            request, "The new password has at least %(count)s characters.", count=MIN_PASSWORD))
    try:
        # argon2 twice (the old password, the new hash): in a worker thread, so other users' pages do not wait.
        changed = await run_in_threadpool(change_password, reviews_of(request), request.state.user, old, new,
                                          session_id_of(request), client_address(request))
    except Throttled as refusal:
        return too_many_attempts(request, refusal, "password.html")
    if not changed:
        return render(request, "password.html", 403, error=translate(request, "The old password is wrong."))
    flash(request, translate(request, "Password changed. This account's sessions on other devices have been ended."))
    return RedirectResponse("/", status_code=303)

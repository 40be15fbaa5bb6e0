"""The review web app: operators upload and preview, reviewers correct and verify, admins see everything.

`create_app(db_url, store_dir)` builds a Starlette app on the `formc batch` database and a photo store
on disk. Pages are rendered on the server (Jinja2); the only script is the live rule check of the
review page. Who may open what:

| route | roles |
|---|---|
| /upload, /jobs/ID, /submissions/ID (+ its page images, photos) | operator (own uploads), reviewer, admin |
| /queue, /review/ID, /export/*, /dashboard, field images | reviewer, admin |
| /audit | admin |
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path, PurePath
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ocr.templates.catalog import get_template
from ocr.run.inputs import MAX_PHOTO_BYTES
from ocr.record import photos_key
from ocr.review.accounts import ROLES, User, authenticate
from ocr.review.dashboard import dashboard as dashboard_figures
from ocr.review.errors import FourEyes, Locked, ReviewError
from ocr.review.exports import crops_zip, results_csv, results_jsonl, verified
from ocr.review.workflow import FLAGGED, Reviews, SubmissionView, parse_value
from ocr.templates.rules import BinOp, Ceil, Expr, FieldRef, Num, SumOf
from ocr.db.store import ResultStore
from ocr.web.auth import csrf_token, guard, load_secret, log_in
from ocr.web.jobs import ClusterReader, LocalReader
from ocr.web.middleware import BodyLimit, SecurityHeaders, ServerTiming
from ocr.run.photo_store import FIELD_ID, SHA, PhotoStore, sniff

HERE = Path(__file__).resolve().parent
MAX_PHOTOS = 6  # the pages of one TPS (3 for the KWK forms, 2 for PPWP) and a few retakes
MAX_UPLOAD_BYTES = MAX_PHOTOS * 20 * 2**20  # refused before it is read (phone JPEGs are 3-8 MB)
SUBMISSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,60}(/[A-Za-z0-9][A-Za-z0-9._ -]{0,60}){0,3}")
REVIEWERS = ("reviewer", "admin")
UPLOADERS = ROLES
SESSION_HOURS = 12  # a working day in the office

templates = Jinja2Templates(directory=str(HERE / "templates"))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    context.update(user=request.state.user, csrf=csrf_token(request), flash=request.session.pop("flash", None))
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _reviews(request: Request) -> Reviews:
    return request.app.state.reviews


def _flash(request: Request, message: str) -> None:
    request.session["flash"] = message


def _view_for(request: Request, reviewers_only: bool = False) -> SubmissionView | Response:
    """The submission in the URL, when this user may see it: reviewers and admins all, operators their uploads."""
    user: User = request.state.user
    submission_id = request.path_params["sid"]
    if user.role not in REVIEWERS and (reviewers_only or not _reviews(request).has_uploaded(user, submission_id)):
        return PlainTextResponse("your role may not open this submission", status_code=403)
    view = _reviews(request).view(submission_id)
    return view if view is not None else PlainTextResponse("no such submission", status_code=404)


# --- log-in -----------------------------------------------------------------------------------------------------

def _next_path(value: str | None) -> str:
    # Only a local path: an open redirect would send a fresh log-in elsewhere.
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


@guard(login=False)
async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html", next=_next_path(request.query_params.get("next")))
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    user = authenticate(_reviews(request), name, password)
    if user is None:
        _reviews(request).log(None, "login_failed", name=name[:100])
        return render(request, "login.html", 401, next=_next_path(str(form.get("next", ""))),
                      error="wrong user name or password")
    log_in(request, user)
    _reviews(request).log(user, "login")
    return RedirectResponse(_next_path(str(form.get("next", ""))), status_code=303)


@guard()
async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@guard()
async def home(request: Request) -> Response:
    role = request.state.user.role
    return RedirectResponse({"operator": "/upload", "reviewer": "/queue"}.get(role, "/dashboard"), status_code=303)


# --- upload and preview -----------------------------------------------------------------------------------------

def _photo_name(filename: str, taken: set[str]) -> str:
    """A printable name for an uploaded file, unique within the upload (phones send every photo as image.jpg)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(filename.replace("\\", "/")).name)[:80].strip("._") or "photo"
    name, n = stem, 2
    while name in taken:
        base, dot, ext = stem.rpartition(".")
        name = f"{base}-{n}.{ext}" if dot else f"{stem}-{n}"
        n += 1
    taken.add(name)
    return name


@guard(*UPLOADERS)
async def upload(request: Request) -> Response:
    reviews = _reviews(request)
    user: User = request.state.user
    if request.method == "GET":
        return render(request, "upload.html", recent=reviews.uploaded_by(user), limits=(MAX_PHOTOS, MAX_UPLOAD_BYTES))

    def refuse(message: str, status: int) -> Response:
        return render(request, "upload.html", status, error=message, recent=reviews.uploaded_by(user),
                      limits=(MAX_PHOTOS, MAX_UPLOAD_BYTES), name=name)

    form = await request.form()
    name = str(form.get("submission", "")).strip()
    files = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
    if not SUBMISSION_NAME.fullmatch(name) or ".." in name:
        return refuse("Name the TPS like kab-bandung/kec-x/tps-001: letters, digits, '.', '_', '-', up to 4 parts "
                      "separated by '/'.", 400)
    if not files:
        return refuse("Choose the photos of the form's pages.", 400)
    if len(files) > MAX_PHOTOS:
        return refuse(f"At most {MAX_PHOTOS} photos per TPS: send only the pages of this TPS.", 400)
    photos, taken = [], set()
    for f in files:
        data = await f.read(MAX_PHOTO_BYTES + 1)
        if len(data) > MAX_PHOTO_BYTES:
            return refuse(f"{f.filename}: larger than {MAX_PHOTO_BYTES // 2**20} MB; send the camera's photo as it is.", 413)
        if sniff(data[:32]) is None:
            return refuse(f"{f.filename}: not a photo (JPEG, PNG, WebP or HEIC). Take a photo of the page and send "
                          "that.", 415)
        photos.append((_photo_name(f.filename, taken), request.app.state.photos.put(data)))
    existing = reviews.id_of(photos_key([sha for _, sha in photos], [name for name, _ in photos]))
    if existing is not None:  # the same photos again: the stored read stands, nothing is read twice
        reviews.record_upload(existing, user, [n for n, _ in photos])
        _flash(request, "These photos were uploaded before: here is their result.")
        return RedirectResponse(f"/submissions/{existing}", status_code=303)
    job_id = request.app.state.reader.submit(name, photos, user)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@guard(*UPLOADERS)
async def job(request: Request) -> Response:
    found = request.app.state.reader.job(request.path_params["job_id"])
    if found is None or found.owner != request.state.user.id:
        return PlainTextResponse("no such upload (uploads are kept an hour)", status_code=404)
    if found.state == "done":
        return RedirectResponse(f"/submissions/{found.submission_id}", status_code=303)
    return render(request, "job.html", job=found, elapsed=time.time() - found.started)


@guard(*UPLOADERS)
async def submission(request: Request) -> Response:
    view = _view_for(request)
    if isinstance(view, Response):
        return view
    return render(request, "submission.html", view=view, statuses=_statuses(view))


def _statuses(view: SubmissionView) -> dict[str, str]:
    """Each field's status as shown: `corrected` once a reviewer set its value."""
    corrected = view.corrected
    return {f: "corrected" if f in corrected else r.status for f, r in view.result.fields.items()}


@guard(*UPLOADERS)
async def page_image(request: Request) -> Response:
    view = _view_for(request)
    if isinstance(view, Response):
        return view
    path = request.app.state.photos.derived(view.result.photos_key, f"page-{request.path_params['n']}.jpg")
    return _image(path, "image/jpeg")


@guard(*REVIEWERS)
async def field_image(request: Request) -> Response:
    view = _view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    field_id, kind = request.path_params["field_id"], request.path_params["kind"]
    if kind not in ("boxes", "region") or not FIELD_ID.fullmatch(field_id) or field_id not in view.result.fields:
        return PlainTextResponse("no such image", status_code=404)
    return _image(request.app.state.photos.derived(view.result.photos_key, f"{kind}-{field_id}.jpg"), "image/jpeg")


@guard(*UPLOADERS)
async def photo(request: Request) -> Response:
    view = _view_for(request)
    if isinstance(view, Response):
        return view
    sha = request.path_params["sha"]
    if not SHA.fullmatch(sha) or sha not in {p.sha256 for p in view.result.pages}:
        return PlainTextResponse("no such photo in this submission", status_code=404)
    path = request.app.state.photos.photo_path(sha)
    if not path.exists():
        return _image(path, "")
    with path.open("rb") as f:
        media_type = sniff(f.read(32))
    return _image(path, media_type or "application/octet-stream")


def _image(path: Path, media_type: str) -> Response:
    if not path.exists():
        return PlainTextResponse("this image is not in the photo store (read by formc batch, not uploaded here)",
                                 status_code=404)
    # Private: only the logged-in browser may keep it.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


# --- review -----------------------------------------------------------------------------------------------------

@guard(*REVIEWERS)
async def queue(request: Request) -> Response:
    return render(request, "queue.html", items=_reviews(request).queue())


def _expr(node: Expr, known: dict) -> dict[str, Any]:
    """A rule expression as JSON for the page's live check; `sum` patterns expanded against the template's fields."""
    if isinstance(node, Num):
        return {"n": node.value}
    if isinstance(node, FieldRef):
        return {"f": node.field_id}
    if isinstance(node, SumOf):
        return {"s": node.matches(known)}
    if isinstance(node, Ceil):
        return {"c": _expr(node.arg, known)}
    assert isinstance(node, BinOp)
    return {"op": node.op, "l": _expr(node.left, known), "r": _expr(node.right, known)}


def _rules_json(template_id: str | None) -> list[dict[str, Any]]:
    if template_id is None:
        return []
    template = get_template(template_id)
    return [{"text": r.expr, "hard": r.hard, "tol": r.tolerance, "cmp": r.parsed.cmp,
             "l": _expr(r.parsed.left, template.fields), "r": _expr(r.parsed.right, template.fields)}
            for r in template.rules]


def _review_page(request: Request, view: SubmissionView, status_code: int = 200, error: str | None = None,
                 typed: dict[str, str] | None = None) -> Response:
    user: User = request.state.user
    order = list(get_template(view.result.template).fields) if view.result.template else list(view.result.fields)
    fields = sorted(view.result.fields, key=lambda f: (view.result.fields[f].page, order.index(f) if f in order else 0))
    flagged = [f for f in fields if view.result.fields[f].status in FLAGGED or f in view.corrected]
    failed_hard = [r for r, hard in view.failed_rules() if hard]
    four_eyes = view.uploaded_by is not None and view.uploaded_by.id == user.id
    saved = request.query_params.get("saved") is not None
    values = {f: "" if v is None else str(v) for f, v in view.values.items()} | (typed or {})
    return render(request, "review.html", status_code, view=view, flagged=flagged,
                  others=[f for f in fields if f not in flagged], values=values, statuses=_statuses(view),
                  rules=_rules_json(view.result.template), failed_hard=failed_hard, four_eyes=four_eyes, error=error,
                  focus_verify=saved and not failed_hard and not four_eyes and view.state == "open",
                  audit=_reviews(request).audit(50, view.id))


@guard(*REVIEWERS)
async def review(request: Request) -> Response:
    view = _view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    if request.method == "GET":
        return _review_page(request, view)
    form = await request.form()
    typed = {key[2:]: str(value) for key, value in form.multi_items() if key.startswith("v.")}
    try:
        values = {f: parse_value(text) for f, text in typed.items()}
    except ValueError as exc:
        return _review_page(request, view, 422, error=str(exc), typed=typed)
    try:
        changed = _reviews(request).correct(view.id, request.state.user, values, str(form.get("reason", "")))
    except Locked as exc:
        return _review_page(request, view, 409, error=str(exc))
    except ReviewError as exc:
        return _review_page(request, view, 422, error=str(exc), typed=typed)
    _flash(request, f"Saved: {len(changed)} field{'s' * (len(changed) != 1)} corrected." if changed else "Saved: no change.")
    return RedirectResponse(f"/review/{view.id}?saved=1", status_code=303)


@guard(*REVIEWERS)
async def verify(request: Request) -> Response:
    view = _view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    try:
        _reviews(request).verify(view.id, request.state.user)
    except FourEyes as exc:
        return _review_page(request, view, 403, error=str(exc))
    except ReviewError as exc:
        return _review_page(request, view, 409, error=str(exc))
    _flash(request, f"{view.result.submission} verified and locked.")
    next_item = next(iter(_reviews(request).queue(1)), None)
    return RedirectResponse(f"/review/{next_item.id}" if next_item else "/queue", status_code=303)


@guard(*REVIEWERS)
async def reopen(request: Request) -> Response:
    view = _view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    form = await request.form()
    try:
        _reviews(request).reopen(view.id, request.state.user, str(form.get("reason", "")))
    except ReviewError as exc:
        return _review_page(request, view, 409, error=str(exc))
    _flash(request, f"{view.result.submission} reopened.")
    return RedirectResponse(f"/review/{view.id}", status_code=303)


# --- exports, dashboard, audit ----------------------------------------------------------------------------------

@guard(*REVIEWERS)
async def export(request: Request) -> Response:
    reviews = _reviews(request)
    kind = request.path_params["kind"]
    views = list(verified(reviews)) if kind != "crops.zip" else []
    if kind == "results.csv":
        body, media_type, count = results_csv(views), "text/csv; charset=utf-8", len(views)
    elif kind == "results.jsonl":
        body, media_type, count = results_jsonl(views), "application/x-ndjson", len(views)
    elif kind == "crops.zip":
        body, count = crops_zip(reviews, request.app.state.photos)
        media_type = "application/zip"
    else:
        return PlainTextResponse("no such export", status_code=404)
    reviews.log(request.state.user, "export", kind=kind, records=count)
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="formc-{kind}"'})


@guard(*REVIEWERS)
async def dashboard(request: Request) -> Response:
    return render(request, "dashboard.html", d=dashboard_figures(_reviews(request).store))


@guard("admin")
async def audit(request: Request) -> Response:
    return render(request, "audit.html", entries=_reviews(request).audit(500))


# --- the app ----------------------------------------------------------------------------------------------------

def create_app(db_url: str, store_dir: Path, secret: str | None = None, https_only: bool = False,
               workers: int = 1, broker: str | None = None) -> Starlette:
    """The app on the results database at `db_url` and the photo store in `store_dir`; cookies signed with `secret`
    (else $FORMC_SECRET, else a key kept in the store); `https_only` marks the cookie Secure (behind TLS). Uploads
    are read by `workers` threads here, or, given a `broker`, by the cluster's `formc worker`s."""
    store = ResultStore(db_url)
    reviews = Reviews(store)
    photos = PhotoStore(store_dir)
    reader = ClusterReader(broker, reviews, photos) if broker else LocalReader(store, reviews, photos, workers)
    routes = [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/upload", upload, methods=["GET", "POST"]),
        Route("/jobs/{job_id:str}", job),
        Route("/submissions/{sid:int}", submission),
        Route("/submissions/{sid:int}/page-{n:int}.jpg", page_image),
        Route("/submissions/{sid:int}/{kind:str}/{field_id:str}.jpg", field_image),
        Route("/submissions/{sid:int}/photos/{sha:str}", photo),
        Route("/queue", queue),
        Route("/review/{sid:int}", review, methods=["GET", "POST"]),
        Route("/review/{sid:int}/verify", verify, methods=["POST"]),
        Route("/review/{sid:int}/reopen", reopen, methods=["POST"]),
        Route("/export/{kind:str}", export),
        Route("/dashboard", dashboard),
        Route("/audit", audit),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(ServerTiming),
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=MAX_UPLOAD_BYTES),
        Middleware(SessionMiddleware, secret_key=load_secret(secret, store_dir), session_cookie="formc_session",
                   max_age=SESSION_HOURS * 3600, same_site="lax", https_only=https_only),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        reader.close()
        store.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.store, app.state.reviews, app.state.photos, app.state.reader = store, reviews, photos, reader
    return app

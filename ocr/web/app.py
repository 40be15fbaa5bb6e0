"""The review web app: operators upload and preview, reviewers correct and verify, admins see everything.

`create_app(db_url, store_dir)` builds a Starlette app on the `formc batch` database and a photo store
on disk. Pages are rendered on the server (Jinja2); the only scripts are the live rule check of the
review page and the upload form's region pickers. The routes live by area in `routes_login.py`, `routes_upload.py`,
`routes_submission.py`, `routes_review.py`, `routes_sources.py`, `routes_reports.py`, `routes_accounts.py`,
`routes_templates.py`, `routes_public.py` and `routes_sync.py` (what they share: `pages.py`). Who may open what:

| route | roles |
|---|---|
| /upload, /jobs/ID, /regions (pickers), /submissions/ID (+ its page images, photos) | operator (own uploads), reviewer, admin |
| /queue, /submissions (all, filtered), /review/ID, /export/*, /dashboard, /rekap, field images | reviewer, admin |
| /rekap/berikutnya (the recap's shortcut to the next TPS needing a reviewer) | reviewer, admin |
| /selisih (sources that disagree, one sheet under two TPS; choose a source) | reviewer, admin |
| /audit, /admin/users (+ a user's active, role, password) | admin |
| /admin/templat (the template editor: a scan learned, its fields and rules edited, saved, tried; `routes_templates.py`) | admin |
| /account/password (one's own) | everyone logged in |
| /login, /language (this browser's language) | everyone |
| /publik (the public results site: verified results only, `routes_public.py`) | everyone, no log-in |
| POST /api/sync (an office's sync bundle, `routes_sync.py`) | an office the centre trusts: its signature, no log-in |

Pages are in Bahasa Indonesia unless a browser chose English (`ocr/web/i18n.py`); times are shown in the server's
zone (`ocr/web/local_time.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ocr.db.regions import Regions
from ocr.db.store import ResultStore
from ocr.review.sessions import SESSION_HOURS
from ocr.review.sources import Sources
from ocr.review.template_drafts import TemplateDrafts
from ocr.review.workflow import Reviews
from ocr.run.photo_store import PhotoStore
from ocr.templates.catalog import own_folders
from ocr.web import routes_public, routes_templates
from ocr.web.auth import load_secret
from ocr.web.jobs import ClusterReader, LocalReader
from ocr.web.local_time import DEFAULT_ZONE
from ocr.web.middleware import BodyLimit, SecurityHeaders, ServerTiming
from ocr.web.pages import HERE, database_unavailable
from ocr.web.routes_accounts import own_password, user_active, user_password, user_role, users
from ocr.web.routes_login import home, language, login, logout
from ocr.web.routes_reports import audit, dashboard, export, next_problem_tps, rekap
from ocr.web.routes_review import queue, reopen, review, submissions, verify
from ocr.web.routes_sources import choose, selisih
from ocr.web.routes_submission import field_image, page_image, photo, submission
from ocr.web.routes_sync import sync_bundle
from ocr.web.routes_upload import MAX_UPLOAD_BYTES, job, regions, upload


def own_templates_folder(templates_dir: Path | None, store_dir: Path) -> Path:
    """Where the template editor saves: `templates_dir`, else the first folder of FORMC_TEMPLATES, else
    `<store>/templates`."""
    return templates_dir or next(iter(own_folders()), store_dir / "templates")


def create_app(db_url: str, store_dir: Path, secret: str | None = None, https_only: bool = False,
               workers: int = 1, broker: str | None = None, timezone: str = DEFAULT_ZONE,
               templates_dir: Path | None = None) -> Starlette:
    """The app on the results database at `db_url` and the photo store in `store_dir`; cookies signed with `secret`
    (else $FORMC_SECRET, else a key kept in the store); `https_only` marks the cookie Secure (behind TLS). Uploads
    are read by `workers` threads here, or, given a `broker`, by the cluster's `formc worker`s. Times are shown in
    `timezone` (an IANA name: Asia/Jakarta, Asia/Makassar or Asia/Jayapura). The template editor keeps its drafts in
    the store and saves into `templates_dir` (`own_templates_folder`), which the catalogue reads when it is a folder of
    FORMC_TEMPLATES (`formc serve` puts it there)."""
    zone = ZoneInfo(timezone)
    store = ResultStore(db_url)
    reviews = Reviews(store)
    photos = PhotoStore(store_dir)
    reader = ClusterReader(broker, reviews, photos) if broker else LocalReader(store, reviews, photos, workers)
    routes = [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/language", language, methods=["POST"]),
        Route("/upload", upload, methods=["GET", "POST"]),
        Route("/jobs/{job_id:str}", job),
        Route("/regions", regions),
        Route("/submissions", submissions),
        Route("/submissions/{sid:int}", submission),
        Route("/submissions/{sid:int}/page-{n:int}.jpg", page_image),
        Route("/submissions/{sid:int}/{kind:str}/{field_id:str}.jpg", field_image),
        Route("/submissions/{sid:int}/photos/{sha:str}", photo),
        Route("/queue", queue),
        Route("/review/{sid:int}", review, methods=["GET", "POST"]),
        Route("/review/{sid:int}/verify", verify, methods=["POST"]),
        Route("/review/{sid:int}/reopen", reopen, methods=["POST"]),
        Route("/selisih", selisih),
        Route("/selisih/choose", choose, methods=["POST"]),
        Route("/export/{kind:str}", export),
        Route("/dashboard", dashboard),
        Route("/rekap", rekap),
        Route("/rekap/berikutnya", next_problem_tps),
        Route("/audit", audit),
        Route("/admin/users", users),
        Route("/admin/users/{name:str}/active", user_active, methods=["POST"]),
        Route("/admin/users/{name:str}/role", user_role, methods=["POST"]),
        Route("/admin/users/{name:str}/password", user_password, methods=["POST"]),
        Route("/admin/templat", routes_templates.home, methods=["GET", "POST"]),
        Route("/admin/templat/draft/{draft_id:str}", routes_templates.editor, methods=["GET", "POST"]),
        Route("/admin/templat/draft/{draft_id:str}/page.png", routes_templates.page_image),
        Route("/admin/templat/draft/{draft_id:str}/simpan", routes_templates.save, methods=["POST"]),
        Route("/admin/templat/draft/{draft_id:str}/coba", routes_templates.try_photo, methods=["POST"]),
        Route("/admin/templat/draft/{draft_id:str}/coba.jpg", routes_templates.tried_image),
        Route("/account/password", own_password, methods=["GET", "POST"]),
        Route("/publik", routes_public.home),
        Route("/publik/tps/{sid:int}/page-{n:int}.jpg", routes_public.page_image),
        Route("/publik/{election:str}", routes_public.region),
        Route("/publik/{election:str}/{code:str}", routes_public.region),
        Route("/publik/{election:str}/{desa:str}/tps/{n:int}", routes_public.tps),
        Route("/api/sync", sync_bundle, methods=["POST"]),
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

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={SQLAlchemyError: database_unavailable})
    app.state.store, app.state.reviews, app.state.photos, app.state.reader = store, reviews, photos, reader
    app.state.zone, app.state.regions, app.state.sources = zone, Regions(store.engine), Sources(reviews)
    app.state.public_cache, app.state.public_rate = routes_public.limits()
    app.state.template_drafts = TemplateDrafts(store_dir / "template-drafts", own_templates_folder(templates_dir, store_dir))
    return app

"""What reviewers and admins read off the whole store: exports (built by `ocr.review.exports`), the dashboard,
the audit log (filtered and paged)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ocr.review.dashboard import dashboard as dashboard_figures
from ocr.review.exports import crops_zip, results_csv, results_jsonl, verified
from ocr.review.search import AuditFilter
from ocr.web.auth import guard
from ocr.web.filters import audit_filter
from ocr.web.i18n import ACTION_LABELS, translate
from ocr.web.pages import REVIEWERS, render, reviews_of
from ocr.web.paging import Pager

AUDIT_PAGE = 100  # entries a page of the audit log shows


@guard(*REVIEWERS)
async def export(request: Request) -> Response:
    reviews = reviews_of(request)
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
        return PlainTextResponse(translate(request, "No such export."), status_code=404)
    reviews.log(request.state.user, "export", kind=kind, records=count)
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="formc-{kind}"'})


@guard(*REVIEWERS)
async def dashboard(request: Request) -> Response:
    return render(request, "dashboard.html", d=dashboard_figures(reviews_of(request).store))


@guard("admin")
async def audit(request: Request) -> Response:
    found, error = audit_filter(request)
    reviews = reviews_of(request)
    pager = Pager.of(request, AUDIT_PAGE, reviews.audit_size(found))
    return render(request, "audit.html", entries=reviews.audit(pager.size, offset=pager.offset, found=found),
                  pager=pager, filtered=found != AuditFilter(), users=[a.name for a in reviews.accounts()],
                  actions=ACTION_LABELS, error=error)

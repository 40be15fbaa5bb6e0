"""What reviewers and admins read off the whole store: exports (built by `ocr.review.exports`), the dashboard, the
recapitulation by region (`ocr.review.recap`) with its shortcut to the next TPS needing a reviewer, the audit log
(filtered and paged)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ocr.db.regions import plain_code
from ocr.record import ELECTIONS, TpsIdentity
from ocr.review.dashboard import dashboard as dashboard_figures
from ocr.review.errors import ReviewError
from ocr.review.exports import crops_zip, results_csv, results_jsonl, verified
from ocr.review.recap import LEVELS, next_problem, recap
from ocr.review.search import AuditFilter
from ocr.web.auth import guard
from ocr.web.filters import audit_filter
from ocr.web.i18n import ACTION_LABELS, translate
from ocr.web.pages import REVIEWERS, explained, flash, render, reviews_of
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


@guard(*REVIEWERS)
async def rekap(request: Request) -> Response:
    """One election's recap inside a region (none: the country) at a level below it (default: the next one)."""
    q = request.query_params
    code = plain_code(q["region"]) if q.get("region") else ""
    election = q.get("election", "bupati")
    below = [name for name, digits in LEVELS.items() if digits > len(code or "")]
    level = q.get("level") or (below[0] if below else "")
    if code is None or election not in ELECTIONS or level not in below:
        return PlainTextResponse(translate(request, "No such recapitulation: check the region, level and election."),
                                 status_code=400)
    try:
        found = recap(reviews_of(request).store, request.app.state.regions, election, level, code)
    except ReviewError as exc:
        return PlainTextResponse(explained(request, exc), status_code=404)
    return render(request, "rekap.html", r=found, levels=below, elections=ELECTIONS, code=code,
                  drill=LEVELS[level] < max(LEVELS.values()), shortcut=shortcut(election, code))


def shortcut(election: str, region: str, after: TpsIdentity | None = None) -> str:
    """The URL of "TPS bermasalah berikutnya" in `region` ("": the country): the first such TPS after `after`."""
    query = {"election": election} | ({"region": region} if region else {})
    return "/rekap/berikutnya?" + urlencode(query | ({"after": f"{after.desa}-{after.tps}"} if after else {}))


def walked(request: Request) -> str | None:
    """The region whose shortcut opened this page (`?rekap=CODE`; "": the country), None when it was not."""
    rekap = request.query_params.get("rekap")
    return None if rekap is None else plain_code(rekap) if rekap else ""


def _after(text: str) -> tuple[str, int] | None:
    """`3204052001-2` (a desa code, a TPS number) -> ("3204052001", 2); None for anything else."""
    desa, _, number = text.partition("-")
    return (desa, int(number)) if plain_code(desa) == desa and number.isdigit() else None


@guard(*REVIEWERS)
async def next_problem_tps(request: Request) -> Response:
    """The shortcut "TPS bermasalah berikutnya": the review page of the next TPS inside the region, after `after`, that
    needs a reviewer (`recap.next_problem`); back to the region's recap when none is left."""
    q = request.query_params
    code, election = plain_code(q["region"]) if q.get("region") else "", q.get("election", "")
    after = _after(q["after"]) if q.get("after") else None
    if code is None or election not in ELECTIONS or (q.get("after") and after is None):
        return PlainTextResponse(translate(request, "No such recapitulation: check the region, level and election."),
                                 status_code=400)
    found = next_problem(reviews_of(request).store, election, code, after)
    if found is None:
        flash(request, translate(request, "No TPS needs a reviewer here any more."))
        return RedirectResponse(f"/rekap?election={election}&region={code}", status_code=303)
    return RedirectResponse(f"/review/{found.submission}?rekap={code}", status_code=303)


@guard("admin")
async def audit(request: Request) -> Response:
    found, error = audit_filter(request)
    reviews = reviews_of(request)
    pager = Pager.of(request, AUDIT_PAGE, reviews.audit_size(found))
    return render(request, "audit.html", entries=reviews.audit(pager.size, offset=pager.offset, found=found),
                  pager=pager, filtered=found != AuditFilter(), users=[a.name for a in reviews.accounts()],
                  actions=ACTION_LABELS, error=error)

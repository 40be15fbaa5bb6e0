"""The discrepancy view (/selisih, issue 21): TPS whose sources disagree, 100 a page (`?tps=` one of them), and on the
first page the sheets filed under two TPS, the photos side by side; a reviewer chooses a TPS's result among its sources
(logged, four eyes) or corrects a read on its review page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ocr.review.errors import FourEyes, ReviewError
from ocr.review.sources import Sources
from ocr.web.auth import guard
from ocr.web.i18n import translate
from ocr.web.pages import REVIEWERS, explained, flash, render
from ocr.web.paging import Pager

SELISIH_PAGE = 100  # TPS a page of /selisih shows


def _page(request: Request, only: str | None, status_code: int = 200, error: str | None = None) -> Response:
    """The list (`only`: that TPS), at the page the URL asks for; after a refused choice, that TPS at /selisih's URL."""
    sources: Sources = request.app.state.sources
    total, undecided = sources.conflict_counts(only)
    pager = Pager.of(request, SELISIH_PAGE, total) if request.method == "GET" else Pager(
        1, SELISIH_PAGE, total, "/selisih", (("tps", only),) if only else ())
    # Every page hash compared: worth it once, on the unfiltered first page, not again on each page of TPS.
    sheets = sources.same_sheets() if pager.number == 1 and only is None else None
    return render(request, "selisih.html", status_code, conflicted=sources.in_conflict(pager.size, pager.offset, only),
                  pager=pager, undecided=undecided, only=only, sheets=sheets, error=error)


@guard(*REVIEWERS)
async def selisih(request: Request) -> Response:
    return _page(request, request.query_params.get("tps", "").strip() or None)


@guard(*REVIEWERS)
async def choose(request: Request) -> Response:
    form = await request.form()
    sources: Sources = request.app.state.sources
    key = str(form.get("tps", ""))
    try:
        chosen = sources.choose(key, str(form.get("ref", "")), request.state.user, str(form.get("reason", "")))
    except FourEyes as exc:
        return _page(request, key, 403, explained(request, exc))
    except ReviewError as exc:
        return _page(request, key, 422, explained(request, exc))
    flash(request, translate(request, "%(source)s is now the result of %(tps)s.", source=chosen.label, tps=key))
    back = str(form.get("back", ""))  # the page of the list the choice was made on; only a page of it
    return RedirectResponse(back if back.startswith("/selisih?") else "/selisih", status_code=303)

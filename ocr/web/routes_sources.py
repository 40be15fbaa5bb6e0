"""The discrepancy view (/selisih, issue 21): TPS whose sources disagree and sheets filed under two TPS, the photos side
by side; a reviewer chooses a TPS's result among its sources (logged, four eyes) or corrects a read on its review page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ocr.review.errors import FourEyes, ReviewError
from ocr.review.sources import Sources
from ocr.web.auth import guard
from ocr.web.i18n import translate
from ocr.web.pages import REVIEWERS, explained, flash, render


def _page(request: Request, status_code: int = 200, error: str | None = None) -> Response:
    sources: Sources = request.app.state.sources
    return render(request, "selisih.html", status_code, conflicted=sources.in_conflict(),
                  sheets=sources.same_sheets(), error=error)


@guard(*REVIEWERS)
async def selisih(request: Request) -> Response:
    return _page(request)


@guard(*REVIEWERS)
async def choose(request: Request) -> Response:
    form = await request.form()
    sources: Sources = request.app.state.sources
    try:
        chosen = sources.choose(str(form.get("tps", "")), str(form.get("ref", "")), request.state.user,
                                str(form.get("reason", "")))
    except FourEyes as exc:
        return _page(request, 403, explained(request, exc))
    except ReviewError as exc:
        return _page(request, 422, explained(request, exc))
    flash(request, translate(request, "%(source)s is now the result of %(tps)s.", source=chosen.label,
                             tps=str(form.get("tps"))))
    return RedirectResponse("/selisih", status_code=303)

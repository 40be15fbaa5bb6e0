"""The public results site /publik (issue 20): read-only, no log-in, verified results only.

A region tree from the country down to a desa's TPS, each level with the verified totals and each paslon's share,
the TPS counted (verified of expected, in review) and the newest verification; a TPS page shows its verified
values and its page images. Nothing a reviewer alone sees leaves here: no machine values, reasons, user names or
audit. What the pages compute is cached for a few seconds (`TtlCache`) and may be kept as long by any cache on the
way (Cache-Control: public); each client address is rate limited (`TokenBuckets`), 429 past it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ocr.db.regions import DESA_DIGITS, Region, plain_code
from ocr.record import ELECTIONS
from ocr.review.dashboard import ballot_order, vote_fields
from ocr.review.errors import ReviewError
from ocr.review.recap import LEVELS, TOTAL_FIELDS, Recap, TpsState, desa_tps, last_verified, recap
from ocr.review.workflow import SubmissionView
from ocr.web.auth import client_address
from ocr.web.i18n import translate
from ocr.web.pages import drawn, render_public, reviews_of
from ocr.web.public_limits import TokenBuckets, TtlCache

CACHE_SECONDS = 10  # how stale a public page may be: a verification shows within this long
REFRESH_SECONDS = 60  # how often an open page reloads itself (<meta http-equiv="refresh">: no script needed)
DEFAULT_ELECTION = "bupati"
Endpoint = Callable[[Request], Awaitable[Response]]


def limits() -> tuple[TtlCache, TokenBuckets]:
    """A fresh cache and rate limit for an app: a page's images and style come with it, so a burst of 60."""
    return TtlCache(CACHE_SECONDS), TokenBuckets(rate=2, burst=60)


def public(endpoint: Endpoint) -> Endpoint:
    """Rate limited per client address; the answer may be cached for CACHE_SECONDS by anyone."""

    @wraps(endpoint)
    async def limited(request: Request) -> Response:
        wait = request.app.state.public_rate.take(client_address(request))
        if wait:
            return PlainTextResponse(translate(request, "Too many requests from this network address: try again in "
                                                        "a moment."), status_code=429,
                                     headers={"Retry-After": str(math.ceil(wait))})
        response = await endpoint(request)
        if response.status_code == 200:
            response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
        return response

    return limited


def _cached(request: Request, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    return request.app.state.public_cache.get(key, compute)


def _not_found(request: Request) -> Response:
    return PlainTextResponse(translate(request, "No such region, TPS or election."), status_code=404)


def shares(verified: Mapping[str, int | None], paslon: list[str]) -> dict[str, float | None]:
    """Each paslon's verified votes as a percentage of all paslon's verified votes (None: none counted yet)."""
    votes = sum(verified.get(c) or 0 for c in paslon)
    return {c: 100 * (verified.get(c) or 0) / votes if votes else None for c in paslon}


@public
async def home(request: Request) -> Response:
    return RedirectResponse(f"/publik/{DEFAULT_ELECTION}", status_code=307)


@dataclass(frozen=True)
class Figures:
    """What a region's page shows, computed together so that its parts agree, and when."""

    recap: Recap  # the region's row among its level's: a desa in its kecamatan's recap, else its own
    tps: list[TpsState]  # a desa's TPS; empty above
    newest: datetime | None  # the newest verification inside the region
    computed: datetime  # the page says its figures are as of this moment (at most CACHE_SECONDS ago)


def _figures(request: Request, election: str, code: str, level: str, above: str) -> Figures:
    store, regions = reviews_of(request).store, request.app.state.regions
    return _cached(request, ("region", election, code), lambda: Figures(
        recap(store, regions, election, level, above, verified_only=True),
        desa_tps(store, election, code) if len(code) == DESA_DIGITS else [], last_verified(store, election, code),
        datetime.now(timezone.utc)))


@public
async def region(request: Request) -> Response:
    """A region (none: the country) of an election: a row per region one level below, or a desa's TPS."""
    election, code = request.path_params["election"], request.path_params.get("code", "")
    if election not in ELECTIONS or (code and plain_code(code) != code):
        return _not_found(request)
    desa = len(code) == DESA_DIGITS
    above = code[:LEVELS["kecamatan"]] if desa else code  # a desa: its row in its kecamatan's recap, its TPS below
    level = "desa" if desa else next(name for name, digits in LEVELS.items() if digits > len(code))
    try:
        found = _figures(request, election, code, level, above)
    except ReviewError:
        return _not_found(request)
    total = next((r for r in found.recap.rows if r.region.code == code), None) if desa else found.recap.total
    if total is None:
        return _not_found(request)
    within = [*found.recap.within, total.region] if desa else found.recap.within
    paslon = [c for c in found.recap.columns if c not in TOTAL_FIELDS]
    return render_public(request, "public_region.html", election=election, elections=ELECTIONS, within=within,
                         rows=[] if desa else found.recap.rows, total=total, paslon=paslon, shares=shares, desa=desa,
                         tps=found.tps, level=level, newest=found.newest, computed=found.computed,
                         refresh=REFRESH_SECONDS)


@public
async def tps(request: Request) -> Response:
    """A verified TPS: its verified values, each paslon's share, its page images."""
    election, desa, number = (request.path_params[k] for k in ("election", "desa", "n"))
    if election not in ELECTIONS or plain_code(desa) != desa or len(desa) != DESA_DIGITS:
        return _not_found(request)
    reviews = reviews_of(request)

    def shown() -> tuple[SubmissionView | None, list[Region], datetime]:
        state = next((s for s in desa_tps(reviews.store, election, desa) if s.number == number and s.verified), None)
        return (reviews.view(state.verified) if state else None, request.app.state.regions.chain(desa),
                datetime.now(timezone.utc))

    view, within, computed = _cached(request, ("tps", election, desa, number), shown)
    if view is None or not within:
        return _not_found(request)
    values = view.values
    paslon = sorted((f for f in values if f in vote_fields()), key=ballot_order)
    return render_public(request, "public_tps.html", election=election, within=within, number=number, view_id=view.id,
                         pages=len(view.result.pages), values=values, paslon=paslon,
                         totals=[f for f in TOTAL_FIELDS if f in values],
                         share=shares(values, paslon), verified_at=view.verified_at, computed=computed,
                         refresh=REFRESH_SECONDS)


@public
async def page_image(request: Request) -> Response:
    """A page image of a verified submission with a place; anything else is refused as if it did not exist."""
    view = reviews_of(request).view(request.path_params["sid"])
    if view is None or view.state != "verified" or view.result.place is None:
        return _not_found(request)
    return await drawn(request, view, f"page-{request.path_params['n']}.jpg", f"public, max-age={CACHE_SECONDS}")

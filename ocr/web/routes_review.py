"""The review: the queue of open submissions and the list of all (both filtered and paged), the review page
(correct values, live rule check, its TPS's sources where they disagree), verify, reopen."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ocr.review.accounts import User
from ocr.review.errors import FourEyes, Locked, ReviewError
from ocr.review.search import SHOWN_STATUSES, SubmissionFilter
from ocr.review.sources import Sources
from ocr.review.workflow import FLAGGED, MAX_VALUE, QUEUED, SubmissionView, parse_value
from ocr.templates.catalog import get_template
from ocr.templates.rules import BinOp, Ceil, Expr, FieldRef, Num, SumOf
from ocr.web.auth import guard
from ocr.web.filters import submission_filter
from ocr.web.i18n import translate
from ocr.web.pages import REVIEWERS, explained, flash, render, reviews_of, statuses, view_for
from ocr.web.paging import Pager
from ocr.web.routes_reports import shortcut, walked
from ocr.web.rule_words import rule_words

QUEUE_PAGE = 100  # submissions a page of the queue or of the list of submissions shows


def _reviewers(request: Request) -> list[str]:
    """Who may have corrected or verified a submission: the reviewer filter's choices."""
    return [a.name for a in reviews_of(request).accounts() if a.role in REVIEWERS]


@guard(*REVIEWERS)
async def queue(request: Request) -> Response:
    found, error = submission_filter(request)
    reviews = reviews_of(request)
    pager = Pager.of(request, QUEUE_PAGE, reviews.queue_size(found))
    return render(request, "queue.html", items=reviews.queue(pager.size, pager.offset, found), pager=pager,
                  filtered=found != SubmissionFilter(), statuses=QUEUED, reviewers=_reviewers(request), error=error)


@guard(*REVIEWERS)
async def submissions(request: Request) -> Response:
    found, error = submission_filter(request)
    reviews = reviews_of(request)
    pager = Pager.of(request, QUEUE_PAGE, reviews.submissions_size(found))
    return render(request, "submissions.html", items=reviews.submissions(pager.size, pager.offset, found),
                  pager=pager, filtered=found != SubmissionFilter(), statuses=SHOWN_STATUSES,
                  reviewers=_reviewers(request), error=error)


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
    return [{"text": r.expr, "words": rule_words(r.expr, template_id), "hard": r.hard, "tol": r.tolerance,
             "cmp": r.parsed.cmp,
             "l": _expr(r.parsed.left, template.fields), "r": _expr(r.parsed.right, template.fields)}
            for r in template.rules]


def _review_page(request: Request, view: SubmissionView, status_code: int = 200, error: str | None = None,
                 typed: dict[str, str] | None = None) -> Response:
    user: User = request.state.user
    template = get_template(view.result.template) if view.result.template else None
    order = list(template.fields) if template else list(view.result.fields)
    labels = {f: field.label for f, field in template.fields.items() if field.label} if template else {}
    fields = sorted(view.result.fields, key=lambda f: (view.result.fields[f].page, order.index(f) if f in order else 0))
    sources: Sources = request.app.state.sources
    tps = sources.of(view.tps_key)
    conflicts = tps.conflicts
    # A field another source of the TPS gives otherwise is one to check, however sure the reader was.
    flagged = [f for f in fields if view.result.fields[f].status in FLAGGED or f in view.corrected
               or f in tps.differing]
    failed_hard = [r for r, hard in view.failed_rules() if hard]
    four_eyes = view.four_eyes(user)
    source_refusal = reviews_of(request).source_refusal(view, user) if conflicts and view.state == "open" else None
    saved = request.query_params.get("saved") is not None
    values = {f: "" if v is None else str(v) for f, v in view.values.items()} | (typed or {})
    walk, place = walked(request), view.result.place  # reached by the recap's shortcut: it goes on from here
    return render(request, "review.html", status_code, view=view, flagged=flagged,
                  others=[f for f in fields if f not in flagged], values=values, statuses=statuses(view),
                  rules=_rules_json(view.result.template), failed_hard=failed_hard, labels=labels, error=error,
                  four_eyes=explained(request, four_eyes) if four_eyes else None, tps=tps, conflicts=conflicts,
                  source_refusal=explained(request, source_refusal) if source_refusal else None,
                  focus_verify=saved and not failed_hard and four_eyes is None and source_refusal is None
                  and view.state == "open",
                  audit=reviews_of(request).audit(50, view.id), walk=walk,
                  next_problem=shortcut(place.election, walk, place) if walk is not None and place else None)


@guard(*REVIEWERS)
async def review(request: Request) -> Response:
    view = view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    if request.method == "GET":
        return _review_page(request, view)
    form = await request.form()
    typed = {key[2:]: str(value) for key, value in form.multi_items() if key.startswith("v.")}
    values = {}
    for f, text in typed.items():
        try:
            values[f] = parse_value(text)
        except ValueError:
            error = translate(request, "%(field)s: '%(text)s' is not a number of votes (0 to %(max)s).", field=f,
                              text=text.strip(), max=MAX_VALUE)
            return _review_page(request, view, 422, error=error, typed=typed)
    try:
        changed = reviews_of(request).correct(view.id, request.state.user, values, str(form.get("reason", "")))
    except Locked as exc:
        return _review_page(request, view, 409, error=explained(request, exc))
    except ReviewError as exc:
        return _review_page(request, view, 422, error=explained(request, exc), typed=typed)
    flash(request, translate(request, "Saved; fields corrected: %(count)s.", count=len(changed)) if changed else
          translate(request, "Saved: no change."))
    walk = walked(request)
    return RedirectResponse(f"/review/{view.id}?saved=1" + ("" if walk is None else f"&rekap={walk}"), status_code=303)


@guard(*REVIEWERS)
async def verify(request: Request) -> Response:
    view = view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    try:
        reviews_of(request).verify(view.id, request.state.user)
    except FourEyes as exc:
        return _review_page(request, view, 403, error=explained(request, exc))
    except ReviewError as exc:
        return _review_page(request, view, 409, error=explained(request, exc))
    flash(request, translate(request, "%(submission)s verified and locked.", submission=view.result.submission))
    walk, place = walked(request), view.result.place
    if walk is not None and place:  # opened by the recap's shortcut: on to the next TPS needing a reviewer there
        return RedirectResponse(shortcut(place.election, walk, place), status_code=303)
    next_item = next(iter(reviews_of(request).queue(1)), None)
    return RedirectResponse(f"/review/{next_item.id}" if next_item else "/queue", status_code=303)


@guard(*REVIEWERS)
async def reopen(request: Request) -> Response:
    view = view_for(request, reviewers_only=True)
    if isinstance(view, Response):
        return view
    form = await request.form()
    try:
        reviews_of(request).reopen(view.id, request.state.user, str(form.get("reason", "")))
    except ReviewError as exc:
        return _review_page(request, view, 409, error=explained(request, exc))
    flash(request, translate(request, "%(submission)s reopened.", submission=view.result.submission))
    return RedirectResponse(f"/review/{view.id}", status_code=303)

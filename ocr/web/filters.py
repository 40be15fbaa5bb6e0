"""The filters of the queue, the list of submissions and the audit log, read from the URL's query (so a filtered
list is a link to share). Dates are days in the server's zone (`formc serve --timezone`), both ends included."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from starlette.requests import Request

from ocr.review.search import AuditFilter, Span, SubmissionFilter
from ocr.web.i18n import translate


def _day(request: Request, key: str) -> date | None:
    text = request.query_params.get(key, "").strip()
    return date.fromisoformat(text) if text else None


def _span(request: Request) -> tuple[Span, str | None]:
    """The days `from` .. `to` of the query as a time span, and a message when a date cannot be read (then no span)."""
    try:
        first, last = _day(request, "from"), _day(request, "to")
    except ValueError:
        return Span(), translate(request, "Write dates as YYYY-MM-DD (e.g. 2024-11-27); the date filter is left out.")
    zone = request.app.state.zone
    return Span(datetime.combine(first, time(), zone) if first else None,
                datetime.combine(last + timedelta(days=1), time(), zone) if last else None), None


def submission_filter(request: Request) -> tuple[SubmissionFilter, str | None]:
    """The submissions the query asks for, and why a part of it was left out (None when nothing was)."""
    q = request.query_params
    read, error = _span(request)
    return SubmissionFilter(region=q.get("region", "").strip(), tps=q.get("tps", "").strip(),
                            status=q.get("status", ""), reviewer=q.get("reviewer", ""), read=read,
                            conflict=q.get("conflict") == "1"), error


def audit_filter(request: Request) -> tuple[AuditFilter, str | None]:
    """The audit entries the query asks for, and why a part of it was left out (None when nothing was)."""
    q = request.query_params
    at, error = _span(request)
    return AuditFilter(user=q.get("user", ""), action=q.get("action", ""), submission=q.get("submission", "").strip(),
                       at=at), error

"""Times as people in the office read them: stored in UTC, shown in the server's zone (WIB, WITA or WIT) with its
abbreviation (`formc serve --timezone`)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from ocr.review.audit import utc

# Indonesia's three zones: WIB (Java, Sumatra), WITA (Bali, Nusa Tenggara, Sulawesi), WIT (Maluku, Papua).
ZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")
DEFAULT_ZONE = "Asia/Jakarta"


def local(at: datetime, zone: ZoneInfo) -> datetime:
    """`at` (aware, or naive UTC as SQLite returns it) in `zone`."""
    return utc(at).astimezone(zone)


@pass_context
def _shown(context: Context, at: datetime | None, form: str = "%Y-%m-%d %H:%M") -> str:
    """`at` in the page's zone, followed by the zone's abbreviation; '' for no time."""
    if at is None:
        return ""
    there = local(at, context["zone"])
    return f"{there.strftime(form)} {there.tzname()}"


def install(env: Environment) -> None:
    """`{{ at|local_time }}` in `env`'s pages; each page's context brings `zone`."""
    env.filters["local_time"] = _shown

"""The app's languages: Bahasa Indonesia by default, English by each browser's choice (a cookie).

Messages are written in English in the code and the page templates (gettext msgids); their Indonesian is in
`ocr/web/locale/id/LC_MESSAGES/messages.po`. The catalog is compiled in memory from the .po when the app first
uses it (Babel), so there is no build step and no compiled file to keep in step. `make messages` extracts new
msgids from ocr/ and merges them into the catalog (`babel.cfg`).
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from starlette.requests import Request

LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
DEFAULT_LANGUAGE = "id"
LANGUAGE_COOKIE = "formc_lang"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def N_(message: str) -> str:
    """Marks a message for extraction where it is translated later, on the page (tables of labels)."""
    return message


@cache
def catalog(language: str) -> gettext.NullTranslations:
    """The translations into `language`; English is the msgids themselves."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        messages = read_po(f, locale=language)
    compiled = BytesIO()
    write_mo(compiled, messages)  # fuzzy entries left out, as msgfmt does
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def translate(request: Request, message: str, **params: object) -> str:
    """`message` in the request's language, with `%(name)s` placeholders filled from `params`."""
    text = catalog(language_of(request)).gettext(message)
    return text % params if params else text


# The codes people see, in words (statuses, reasons, audit actions); unknown codes are shown as they are.
STATUS_LABELS = {
    "ok": N_("ok"), "review": N_("to review"), "incomplete": N_("incomplete"), "rejected": N_("rejected"),
    "error": N_("error"), "verified": N_("verified"), "corrected": N_("corrected"), "open": N_("open"),
    "unreadable": N_("unreadable"),
}
REASON_LABELS = {
    # A field's findings (ocr.reader.reasons.FindingCode).
    "rule_failed": N_("a rule of the form fails"), "soft_rule": N_("a check of plausibility fails"),
    "low_margin": N_("another reading is nearly as likely"), "corrected_by_rules": N_("changed by the form's rules"),
    "unchecked": N_("no rule of the form checks this number"),
    "empty_field": N_("nothing written"), "unreadable": N_("cannot be read"),
    "no_digit_written": N_("zero read from fillers only"), "box_not_placed": N_("a box not found on the page"),
    "bubble_conflict": N_("the bubbles disagree"), "tally_conflict": N_("the tally marks disagree with the number"),
    "row_struck": N_("tally row struck out"), "missing_page": N_("a page is missing"),
    "duplicate_photos": N_("the same photos as another TPS"),
    # A photo's refusals (ocr.reader.reasons.ReasonCode).
    "empty_file": N_("empty file"), "not_an_image": N_("not a photo"), "truncated": N_("photo cut off or damaged"),
    "image_too_large": N_("photo too large"), "image_too_small": N_("photo too small"),
    "no_page_found": N_("no form page found"), "page_cut_off": N_("page cut off"),
    "page_not_flat": N_("page bent or folded"), "too_blurry": N_("too blurred"), "too_dark": N_("too dark"),
    "unknown_template": N_("form not recognised"), "wrong_page": N_("wrong page"),
    "file_unreadable": N_("file cannot be read"), "internal_error": N_("server error"),
    "worker_crashed": N_("server error"),
    # A submission's place (ocr.run.places).
    "unknown_region": N_("region not in the registry"), "bad_tps_identity": N_("TPS number or election unreadable"),
    # A TPS's sources (ocr.review.conflicts).
    "source_conflict": N_("the TPS's sources disagree"),
}
ACTION_LABELS = {
    "upload": N_("upload"), "correct": N_("correction"), "verify": N_("verified"),
    "verify_refused": N_("verification refused"),
    "reopen": N_("reopened"), "export": N_("export"), "login": N_("log-in"), "logout": N_("log-out"),
    "login_failed": N_("failed log-in"), "login_locked": N_("account locked"),
    "login_throttled": N_("log-in refused (too many failures)"), "user_add": N_("user added"),
    "user_activate": N_("user activated"), "user_deactivate": N_("user deactivated"),
    "user_set_role": N_("role changed"), "user_reset_password": N_("password reset"),
    "user_change_password": N_("own password changed"),
    "upload_conflict": N_("upload refused: the photos of another TPS"),
    "choose_source": N_("source chosen as the TPS's result"), "choose_refused": N_("choice of a source refused"),
    "import_source": N_("numbers imported as a source"), "template_save": N_("template saved"),
}
ROLE_LABELS = {"operator": N_("operator"), "reviewer": N_("reviewer"), "admin": N_("admin")}
ELECTION_LABELS = {"gubernur": N_("governor"), "bupati": N_("regent (bupati)"), "walikota": N_("mayor (wali kota)"),
                   "presiden": N_("president")}


@pass_context
def _gettext(context: Context, message: str) -> str:
    return context["i18n"].gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return context["i18n"].ngettext(singular, plural, n)


def _labelled(table: dict[str, str]):
    @pass_context
    def label(context: Context, code: object) -> str:
        text = str(code)
        return context["i18n"].gettext(table[text]) if text in table else text

    return label


def install(env: Environment) -> None:
    """`{% trans %}`, `_()` and the code-to-words filters in `env`'s pages; each page's context brings `i18n`, the
    request's catalog, so one environment serves every language at once."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True  # a {% trans %} block's line breaks are layout, not part of its msgid
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(status_label=_labelled(STATUS_LABELS), reason_label=_labelled(REASON_LABELS),
                       action_label=_labelled(ACTION_LABELS), role_label=_labelled(ROLE_LABELS),
                       election_label=_labelled(ELECTION_LABELS))

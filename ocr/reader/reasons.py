"""Why: reason codes of a photo or page that could not be read (and the failure value a stage returns), and the
codes of what the reader found about a field (the findings that send it to a person or explain a change)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    EMPTY_FILE = "empty_file"
    NOT_AN_IMAGE = "not_an_image"
    TRUNCATED = "truncated"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_TOO_SMALL = "image_too_small"
    NO_PAGE_FOUND = "no_page_found"
    PAGE_CUT_OFF = "page_cut_off"
    PAGE_NOT_FLAT = "page_not_flat"
    TOO_BLURRY = "too_blurry"
    TOO_DARK = "too_dark"
    UNKNOWN_TEMPLATE = "unknown_template"
    WRONG_PAGE = "wrong_page"
    FILE_UNREADABLE = "file_unreadable"
    INTERNAL_ERROR = "internal_error"
    WORKER_CRASHED = "worker_crashed"
    UNKNOWN_REGION = "unknown_region"  # of a submission: its kelurahan/desa code is not in the region registry
    BAD_TPS_IDENTITY = "bad_tps_identity"  # of a submission: its TPS number or election cannot be read


@dataclass(frozen=True)
class Refusal:
    """A stage's failure value: a reason code for programs and a message a person can act on."""

    code: ReasonCode
    message: str

    def __bool__(self) -> bool:  # a refusal is falsy, so `if result:` reads as "if it worked"
        return False


class FindingCode(StrEnum):
    """What the verdict says about a field (and, for rules, the submission)."""

    RULE_FAILED = "rule_failed"  # detail: the hard rule, as written in the template
    SOFT_RULE = "soft_rule"  # detail: the soft rule that does not hold on the emitted values
    LOW_MARGIN = "low_margin"  # detail: the margin in nats over the runner-up
    UNCHECKED = "unchecked"  # no hard rule of the form names the field: only a person can confirm it
    CORRECTED_BY_RULES = "corrected_by_rules"  # detail: what the boxes read
    EMPTY_FIELD = "empty_field"
    UNREADABLE = "unreadable"
    NO_DIGIT_WRITTEN = "no_digit_written"  # a zero read from fillers only
    BOX_NOT_PLACED = "box_not_placed"  # a box not found on its printed lines
    BUBBLE_CONFLICT = "bubble_conflict"  # OMR bubbles that disagree with each other
    TALLY_CONFLICT = "tally_conflict"  # detail: `<row field> tally 52 vs written 57`, both confident
    ROW_STRUCK = "row_struck"  # a row-sum whose tally row is struck out as unused: read as 0, not from its boxes
    MISSING_PAGE = "missing_page"  # of the submission: a page of its template no photo shows (detail: its number)
    DUPLICATE_PHOTOS = "duplicate_photos"  # of the submission: the same photos as another one (detail: its name)


@dataclass(frozen=True)
class Finding:
    """A code for programs and a detail for people (a rule, a margin, a value)."""

    code: FindingCode
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else str(self.code)

"""Why a photo or page could not be read: reason codes and the failure value a stage returns."""

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


@dataclass(frozen=True)
class Refusal:
    """A stage's failure value: a reason code for programs and a message a person can act on."""

    code: ReasonCode
    message: str

    def __bool__(self) -> bool:  # a refusal is falsy, so `if result:` reads as "if it worked"
        return False

"""Completeness: which pages of its template a submission lacks, and where a lacking page was seen.

A TPS sends every page of its form; one without the vote counts must not come out `ok` for the
pages it has. Each page of the template that no photo was aligned to is a `missing_page` finding
(detail: the page number). When a page is missing, the photos that were read are searched once
more for its tag: a photo that shows two sheets (the missing one beside or under the one read)
says so in the detail, so the operator knows to photograph each page alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ocr.reader.locate import find_tags, reduce_for_locating
from ocr.reader.reasons import Finding, FindingCode
from ocr.templates.model import FormTemplate


def missing_pages(template: FormTemplate, read_pages: Sequence[tuple[str, int, np.ndarray]]) -> list[Finding]:
    """One finding per page of `template` that none of `read_pages` ((photo source, page number, greyscale photo)
    of every aligned photo) shows; none when the submission is whole."""
    have = {number for _, number, _ in read_pages}
    lacking = [page for page in template.pages if page.number not in have]
    if not lacking:
        return []
    seen = _pages_seen(template, read_pages) if any(p.tag_id is not None for p in lacking) else {}
    findings = []
    for page in lacking:
        where = seen.get(page.number)
        detail = str(page.number) if where is None else (
            f"{page.number} (its sheet is also in {where[0]}, beside page {where[1]}: photograph each page alone)")
        findings.append(Finding(FindingCode.MISSING_PAGE, detail))
    return findings


def _pages_seen(template: FormTemplate, read_pages: Sequence[tuple[str, int, np.ndarray]]
                ) -> dict[int, tuple[str, int]]:
    """Page number -> (photo source, the page read from it) for every other page of `template` whose tag shows in a
    photo read as one page (searched on the reduced copy: slow on a whole photo, so only for incomplete ones)."""
    page_of_tag = {p.tag_id: p.number for p in template.pages if p.tag_id is not None}
    seen: dict[int, tuple[str, int]] = {}
    for source, number, gray in read_pages:
        small, _ = reduce_for_locating(gray)
        for tag in find_tags(small):
            other = page_of_tag.get(tag.tag_id)
            if other is not None and other != number:
                seen.setdefault(other, (source, number))
    return seen

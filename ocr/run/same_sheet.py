"""The same sheet under two TPS: pages of different submissions whose handwriting hashes alike (`formc integrity`).

Byte-identical photos are twins (`twins.py`); a sheet photographed again, or its photo re-compressed, is not
byte-identical but its page hash (`ocr/reader/page_hash.py`) differs in few bits, where two sheets of the
same form differ in about half. Only pages of the same template page can be one sheet, so pages are grouped by
(template, page) and each group compared all against all, in blocks of packed 64-bit words: about 2 s for a group
of 20,000 pages on one core. An index that skips most pairs (hash-prefix buckets, multi-index hashing, a BK-tree)
does not pay at this radius: a match may differ in a fifth of its 256 bits, and pages of one form share enough
bits that every chunk of a hash has near neighbours in most other pages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ocr.reader.page_hash import SAME_SHEET_BITS, hash_words
from ocr.record import SubmissionResult

BLOCK = 256  # pages compared at once against the rest of their group: (BLOCK x group) distances in memory


@dataclass(frozen=True)
class HashedPage:
    submission: str
    source: str
    template: str
    page: int
    photo_hash: str


@dataclass(frozen=True)
class SameSheet:
    """Two pages of different submissions that show one sheet: `bits` of their hashes differ."""

    first: HashedPage
    second: HashedPage
    bits: int


def hashed_pages(results: Iterable[SubmissionResult]) -> Iterator[HashedPage]:
    """Every page of `results` that has a hash (aligned, read by schema 4 or later)."""
    for result in results:
        for page in result.pages:
            if page.photo_hash is not None and result.template is not None and page.page is not None:
                yield HashedPage(result.submission, page.source, result.template, page.page, page.photo_hash)


def same_sheets(pages: Iterable[HashedPage], max_bits: int = SAME_SHEET_BITS) -> list[SameSheet]:
    """Every pair of pages of different submissions and the same template page whose hashes differ in at most
    `max_bits` bits, nearest first (then by submission names)."""
    groups: dict[tuple[str, int], list[HashedPage]] = defaultdict(list)
    for page in pages:
        groups[(page.template, page.page)].append(page)
    found = []
    for group in groups.values():
        words = hash_words([p.photo_hash for p in group])
        for start in range(0, len(group), BLOCK):
            block, rest = words[start:start + BLOCK], words[start:]
            bits = np.zeros((len(block), len(rest)), np.uint16)
            for w in range(words.shape[1]):
                bits += np.bitwise_count(block[:, w, None] ^ rest[None, :, w])
            for i, j in zip(*np.nonzero(bits <= max_bits)):
                a, b = group[start + i], group[start + j]
                if j > i and a.submission != b.submission:  # each pair once; one submission's pages are not a copy
                    found.append(SameSheet(*sorted((a, b), key=lambda p: (p.submission, p.source)), int(bits[i, j])))
    return sorted(found, key=lambda s: (s.bits, s.first.submission, s.second.submission, s.first.page))

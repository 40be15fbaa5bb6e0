"""Numbers per TPS from outside (`formc sources import`): a CSV or JSON file read through a mapping file that says
which of its columns (or keys) name the TPS and which hold which field.

The mapping (YAML):

    template: kwk-gubernur-3          # the fields below must be this template's
    place: {desa: kode_wilayah, tps: tps, election: pemilihan}   # or `submission: nama_tps` (a TPS without a place)
    election: gubernur                # when no column says it
    fields: {suara_1: suara_paslon_1, "chart.100026": suara_paslon_2}   # column or dotted key -> field id

JSON is a list of objects (or one object: one TPS); a dotted key reaches into nested objects. A value is a whole
number of votes or blank (none). Anything the mapping or the file gets wrong is refused whole, with the row and
column: nothing is stored from a file that does not read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ocr.record import Election, TpsIdentity
from ocr.review.conflicts import tps_key
from ocr.review.workflow import MAX_VALUE
from ocr.templates.catalog import load_templates


class MappingError(ValueError):
    """A mapping file or a numbers file that cannot be read as the mapping says (the message says where)."""


class PlaceColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    desa: str
    tps: str
    election: str | None = None


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str
    place: PlaceColumns | None = None
    submission: str | None = None
    election: Election | None = None
    fields: dict[str, str]

    @model_validator(mode="after")
    def _one_tps(self) -> Mapping:
        if (self.place is None) == (self.submission is None):
            raise ValueError("give either `place` (desa, tps, election columns) or `submission` (a name column)")
        if self.place is not None and self.place.election is None and self.election is None:
            raise ValueError("say the election: `place.election` (a column) or `election` (one for every row)")
        if not self.fields:
            raise ValueError("`fields` maps no column to a field")
        return self


def load_mapping(path: Path) -> Mapping:
    """The mapping file, its field ids checked against its template's."""
    try:
        mapping = Mapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise MappingError(f"{path}: not a mapping file: {exc}") from exc
    templates = load_templates()
    if mapping.template not in templates:
        raise MappingError(f"{path}: no template {mapping.template!r} (formc template list)")
    unknown = sorted(set(mapping.fields.values()) - set(templates[mapping.template].fields))
    if unknown:
        raise MappingError(f"{path}: {mapping.template} has no field {', '.join(unknown)}")
    return mapping


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingError(f"{path}: not JSON: {exc}") from exc
        data = [data] if isinstance(data, dict) else data
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise MappingError(f"{path}: JSON must be an object (one TPS) or a list of objects")
        return data
    return list(csv.DictReader(text.splitlines()))


def _cell(record: dict[str, Any], column: str, where: str) -> Any:
    """The value at `column` (a dotted key reaches into nested objects)."""
    if column in record:
        return record[column]
    value: Any = record
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            raise MappingError(f"{where}: no column {column!r}")
        value = value[part]
    return value


def _votes(value: Any, where: str) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_VALUE:
        raise MappingError(f"{where}: {text!r} is not a number of votes (0 to {MAX_VALUE})")
    return int(text)


def read_numbers(path: Path, mapping: Mapping) -> dict[str, dict[str, int | None]]:
    """TPS key (`sources.tps_key`) -> its field values, of every row of the CSV or JSON file at `path`."""
    rows: dict[str, dict[str, int | None]] = {}
    for n, record in enumerate(_records(path), start=1):
        where = f"{path} row {n}"
        if mapping.place is not None:
            election = _cell(record, mapping.place.election, where) if mapping.place.election else mapping.election
            try:
                place = TpsIdentity(desa=str(_cell(record, mapping.place.desa, where)).replace(".", ""),
                                    tps=_cell(record, mapping.place.tps, where), election=election)
            except ValidationError as exc:
                raise MappingError(f"{where}: not a TPS: {exc.errors()[0]['msg']}") from exc
            key = tps_key(place.desa, place.tps, place.election, "")
        else:
            key = tps_key(None, None, None, str(_cell(record, mapping.submission, where)))
        if key in rows:
            raise MappingError(f"{where}: the TPS {key} again")
        rows[key] = {field: _votes(_cell(record, column, where), f"{where} column {column!r}")
                     for column, field in mapping.fields.items()}
    return rows

"""The same sheet under two TPS (`formc integrity`): found when re-photographed and re-compressed, never confused with
another sheet of the same form; the page hash kept in the JSONL and the database."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner

from cli import main
from ocr.db.store import ResultStore, default_url
from ocr.pipeline import PhotoInput, ReaderSettings, read_submission
from ocr.reader.page_hash import SAME_SHEET_BITS, hash_distance
from ocr.record import SubmissionResult
from ocr.run.same_sheet import HashedPage, same_sheets
from ocr.synth.camera import PROFILES, forwarded
from ocr.synth.handwriting import load_bank
from ocr.synth.job import sheet_photos
from ocr.templates.catalog import get_template, load_templates

TEMPLATES = tuple(load_templates().values())
PAGE = 3  # the smallest page to read: nine total boxes


def record(submission: str, jpeg: bytes) -> SubmissionResult:
    return read_submission([PhotoInput(f"{submission}/page-{PAGE}.jpg", jpeg, hashlib.sha256(jpeg).hexdigest())],
                           TEMPLATES, ReaderSettings(), submission)


@pytest.fixture(scope="module")
def records() -> list[SubmissionResult]:
    """tps-a: a sheet; tps-b: the same sheet photographed again and forwarded (half size, JPEG 50); tps-c: another
    sheet of the same template and page (other values, other writer)."""
    template, bank = get_template("kwk-walikota-2"), load_bank(None)
    profile = replace(PROFILES["phone"], megapixels=(6.0, 6.0))
    (_, (first, again)), = [p for p in sheet_photos(template, 1, 21, profile, bank) if p[0] == PAGE]
    (_, (other, _)), = [p for p in sheet_photos(template, 2, 21, profile, bank) if p[0] == PAGE]
    return [record("tps-a", first), record("tps-b", forwarded(again)), record("tps-c", other)]


def test_every_read_page_has_a_hash_of_256_bits(records):
    assert all(r.pages[0].page == PAGE and re.fullmatch("[0-9a-f]{64}", r.pages[0].photo_hash) for r in records)


def test_a_sheet_rephotographed_and_recompressed_under_another_tps_is_found_and_another_sheet_is_not(records):
    a, b, c = (r.pages[0].photo_hash for r in records)
    assert hash_distance(a, b) <= SAME_SHEET_BITS < min(hash_distance(a, c), hash_distance(b, c))
    pages = [HashedPage(r.submission, r.pages[0].source, r.template, PAGE, r.pages[0].photo_hash) for r in records]
    pairs = same_sheets(pages)
    assert [(p.first.submission, p.second.submission, p.first.page) for p in pairs] == [("tps-a", "tps-b", PAGE)]
    # Two pages of one submission are not a copy of each other, whatever their hashes.
    assert same_sheets([pages[0], replace(pages[1], submission="tps-a")]) == []


def test_the_hash_round_trips_through_the_jsonl_and_the_database_and_formc_integrity_reads_both(records, tmp_path):
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text("".join(r.model_dump_json() + "\n" for r in records))
    assert [SubmissionResult.model_validate_json(line) for line in jsonl.read_text().splitlines()] == records
    url = default_url(tmp_path / "results.db")
    with ResultStore(url) as store:
        store.save_many(records)
        assert [store.get(r.submission, r.photos_key) for r in records] == records
    expected = {"bits": hash_distance(records[0].pages[0].photo_hash, records[1].pages[0].photo_hash),
                "template": "kwk-walikota-2", "page": PAGE,
                "first": {"submission": "tps-a", "source": f"tps-a/page-{PAGE}.jpg"},
                "second": {"submission": "tps-b", "source": f"tps-b/page-{PAGE}.jpg"}}
    for args in ([str(jsonl)], ["--db", url]):
        out = CliRunner().invoke(main, ["integrity", *args, "--json"])
        assert out.exit_code == 0, out.output
        assert [json.loads(line) for line in out.output.splitlines()] == [expected]
    table = CliRunner().invoke(main, ["integrity", str(jsonl)])
    assert "1 pairs among 3 pages" in table.output and "tps-b" in table.output
    assert CliRunner().invoke(main, ["integrity"]).exit_code == 2  # neither a file nor --db

"""A whole submission through every stage: photos in, values with statuses out."""

import pytest

from ocr.templates.catalog import get_template
from ocr.synth.handwriting import load_bank
from ocr.pipeline import read_submission
from ocr.reader.reasons import ReasonCode
from ocr.synth.job import SynthJob, synthesize_tps


@pytest.fixture(scope="module")
def tps(tmp_path_factory):
    out = tmp_path_factory.mktemp("read")
    truth = synthesize_tps(get_template("kwk-walikota-2"), 3, SynthJob("kwk-walikota-2", 1, out, seed=21), load_bank(None),
                           False)
    folder = out / truth["submission"]
    photos = [(name, (folder / name).read_bytes()) for name in truth["pages"].values()]
    return truth, photos


def test_a_clean_submission_reads_right_or_flags(tps):
    truth, photos = tps
    result = read_submission(photos)
    assert result.template_id == "kwk-walikota-2" and result.status in ("ok", "review")
    assert [p.page for p in result.pages] == [1, 2, 3] and all(p.refusal is None for p in result.pages)
    fields = result.verdict.fields
    assert fields.keys() == get_template("kwk-walikota-2").fields.keys()
    wrong_but_trusted = [f for f, v in fields.items()
                         if v.status in ("ok", "corrected") and v.value != truth["fields"][f]]
    assert wrong_but_trusted == []
    assert sum(v.value == truth["fields"][f] for f, v in fields.items()) >= 0.97 * len(fields)
    assert set(result.timings_ms) == {"decode", "align", "classify", "decode_rules"}


def test_a_refused_photo_rejects_the_submission_but_the_other_pages_are_read(tps):
    _, photos = tps
    result = read_submission([photos[0], ("notes.jpg", b"not a photo at all"), photos[2]])
    assert result.status == "rejected"
    assert result.pages[1].refusal.code == ReasonCode.NOT_AN_IMAGE
    assert result.verdict is not None and "dpt_j" in result.verdict.fields


def test_the_same_page_twice_is_refused_as_wrong_page(tps):
    _, photos = tps
    result = read_submission([photos[0], photos[0]])
    assert result.pages[1].refusal.code == ReasonCode.WRONG_PAGE

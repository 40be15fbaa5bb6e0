"""A whole submission through every stage: photos in, values with statuses out."""

import cv2
import numpy as np
import pytest

from ocr.pipeline import PhotoInput, ReaderSettings, read_submission
from ocr.reader.reasons import FindingCode, ReasonCode
from ocr.record import SCHEMA_VERSION
from ocr.synth.handwriting import load_bank
from ocr.synth.job import SynthJob, synthesize_tps
from ocr.templates.catalog import get_template, load_templates

TEMPLATES = tuple(load_templates().values())


def read(photos: list[tuple[str, bytes]]):
    return read_submission([PhotoInput(name, data, f"{i:064x}") for i, (name, data) in enumerate(photos)], TEMPLATES,
                           ReaderSettings(), "tps")


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
    result = read(photos)
    assert result.template == "kwk-walikota-2" and result.status in ("ok", "review")
    assert [p.page for p in result.pages] == [1, 2, 3] and all(p.status == "read" for p in result.pages)
    assert all(len(p.geometry.boxes) > 0 for p in result.pages) and result.schema_version == SCHEMA_VERSION
    assert result.reader_version.templates == {"kwk-walikota-2": get_template("kwk-walikota-2").version}
    fields = result.fields
    assert fields.keys() == get_template("kwk-walikota-2").fields.keys()
    wrong_but_trusted = [f for f, v in fields.items()
                         if v.status in ("ok", "corrected") and v.value != truth["fields"][f]]
    assert wrong_but_trusted == []
    assert sum(v.value == truth["fields"][f] for f, v in fields.items()) >= 0.97 * len(fields)
    assert set(result.timings_ms) == {"decode", "align", "cut", "classify", "tally", "decode_rules"}
    row_sums = [f for f in fields if "_baris_" in f]
    assert row_sums and all(fields[f].tally is not None for f in row_sums)
    assert all(v.tally is None for f, v in fields.items() if f not in row_sums)
    # Every row the marks were counted on agrees with what was written, or its field is flagged.
    assert all(fields[f].tally.count == truth["fields"][f] or fields[f].status == "review" for f in row_sums
               if fields[f].tally.status != "none")


def test_a_refused_photo_rejects_the_submission_but_the_other_pages_are_read(tps):
    _, photos = tps
    result = read([photos[0], ("notes.jpg", b"not a photo at all"), photos[2]])
    assert result.status == "rejected"
    assert result.pages[1].errors[0].code == ReasonCode.NOT_AN_IMAGE and result.pages[1].geometry is None
    assert "dpt_j" in result.fields and result.reasons[0].code == ReasonCode.NOT_AN_IMAGE


def test_the_same_page_twice_is_refused_as_wrong_page(tps):
    _, photos = tps
    result = read([photos[0], photos[0]])
    assert result.pages[1].errors[0].code == ReasonCode.WRONG_PAGE


def test_page_3_in_page_2s_slot_is_caught_by_its_tag(tps):
    """The page tag, not the photo's name or place, says which page a photo shows (KawalC1's swapped pages)."""
    _, photos = tps
    page_1, _, page_3 = (data for _, data in photos)
    result = read([("page-1.jpg", page_1), ("page-2.jpg", page_3), ("page-3.jpg", page_3)])
    assert [(p.source, p.page) for p in result.pages] == [("page-1.jpg", 1), ("page-2.jpg", 3), ("page-3.jpg", 3)]
    assert result.status == "rejected" and result.pages[2].errors[0].code == ReasonCode.WRONG_PAGE
    assert [(r.code, r.detail) for r in result.reasons if r.code in (ReasonCode.WRONG_PAGE, FindingCode.MISSING_PAGE)] == [
        (ReasonCode.WRONG_PAGE, "page-3.jpg"), (FindingCode.MISSING_PAGE, "2")]
    # Alone in its slot, with page 3's own slot empty: the submission lacks page 2 and says so.
    alone = read([("page-1.jpg", page_1), ("page-2.jpg", page_3)])
    assert alone.status == "incomplete" and [p.page for p in alone.pages] == [1, 3]
    assert [(r.code, r.detail) for r in alone.reasons if r.code == FindingCode.MISSING_PAGE] == [
        (FindingCode.MISSING_PAGE, "2")]


def test_a_bug_in_a_stage_is_an_error_record_with_its_traceback_in_the_log(tps, monkeypatch, caplog):
    import ocr.pipeline

    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(ocr.pipeline, "decide", broken)
    result = read(tps[1])
    assert result.status == "error" and result.reasons[0].code == ReasonCode.INTERNAL_ERROR
    assert "ZeroDivisionError: planted" in result.reasons[0].detail
    assert "Traceback" in caplog.text and "planted" in caplog.text


def test_a_submission_without_all_its_pages_is_incomplete_not_ok(tps):
    _, photos = tps
    result = read([photos[0]])
    assert result.status == "incomplete" and result.template == "kwk-walikota-2"
    assert [(r.code, r.detail) for r in result.reasons if r.code == FindingCode.MISSING_PAGE] == [
        (FindingCode.MISSING_PAGE, "2"), (FindingCode.MISSING_PAGE, "3")]
    assert "dpt_j" in result.fields and "suara_sah" not in result.fields  # page 1 is read all the same


def test_a_photo_showing_two_sheets_says_so_when_one_of_them_is_missing(tps):
    _, photos = tps
    page1, page2 = (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for _, data in photos[:2])
    side_by_side = np.hstack([page1, cv2.resize(page2, (page2.shape[1] * page1.shape[0] // page2.shape[0],
                                                        page1.shape[0]))])
    both = cv2.imencode(".jpg", side_by_side, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    result = read([("both.jpg", both), photos[2]])
    assert result.status == "incomplete", [str(r) for r in result.reasons]
    missing = [r.detail for r in result.reasons if r.code == FindingCode.MISSING_PAGE]
    read_page = result.pages[0].page
    other = 2 if read_page == 1 else 1
    assert missing == [f"{other} (its sheet is also in both.jpg, beside page {read_page}: photograph each page alone)"]


def _rows_of(template_id: str, field_id: str) -> list[int]:
    """The rows a field's boxes take in the classifier's batch of a whole submission (pages in order, fields in
    template order)."""
    start, template = 0, get_template(template_id)
    for page in template.pages:
        for f in page.fields:
            if f.id == field_id:
                return list(range(start, start + len(f.boxes_mm)))
            start += len(f.boxes_mm)
    raise KeyError(field_id)


def test_a_form_sent_to_a_person_by_one_confident_misread_gets_a_second_look(tps, monkeypatch):
    """The first look reads dpt_l's last box as another digit at p 0.999 (a stranger's confident misread): the form
    breaks L + P = J too clearly to be fixed. The second look classifies the boxes of the fields not ok again, over
    shifted views, and the form reads as written; without it the form goes to a person."""
    from ocr.reader.digits import DigitClassifier

    truth, photos = tps
    plain = read(photos)
    assert plain.status == "ok" and plain.fields["dpt_l"].value == truth["fields"]["dpt_l"]
    last = _rows_of("kwk-walikota-2", "dpt_l")[-1]
    every_box = sum(len(f.boxes_mm) for f in get_template("kwk-walikota-2").fields.values())
    wrong = (int(str(truth["fields"]["dpt_l"])[-1]) + 5) % 10
    predict, looked, misread = DigitClassifier.predict_cleaned, [], []

    def misreads_the_box_as_cut(self, clean):
        """That box, as cut, is read wrong every time; moved a pixel (the second look's views), as the model reads it."""
        probs = predict(self, clean)
        if len(clean) == every_box:  # the whole submission's boxes: the first look
            misread.append(clean[last].copy())
        for row in np.flatnonzero([np.array_equal(crop, misread[0]) for crop in clean]):
            probs[row] = 0.001 / 12
            probs[row, wrong] = 0.999
        return probs

    monkeypatch.setattr(DigitClassifier, "predict_cleaned", misreads_the_box_as_cut)
    second = DigitClassifier.predict_second_look
    monkeypatch.setattr(DigitClassifier, "predict_second_look", lambda self, clean, *as_cut: looked.append(len(clean))
                        or second(self, clean, *as_cut))
    result = read(photos)
    assert result.status == "ok" and result.fields["dpt_l"].value == truth["fields"]["dpt_l"]
    assert len(looked) == 1 and 0 < looked[0] < every_box / 4  # the doubtful fields' boxes only, not the form's
    without = read_submission([PhotoInput(name, data, f"{i:064x}") for i, (name, data) in enumerate(photos)],
                              TEMPLATES, ReaderSettings(second_look=False), "tps")
    assert without.status == "review" and without.fields["dpt_l"].status == "review"
    assert len(looked) == 1  # no second look when it is off

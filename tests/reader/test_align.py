import json

import cv2
import numpy as np
import pytest
import yaml

from ocr.reader.align import align_page, cut_boxes
from ocr.reader.decode import decode_photo
from ocr.reader.identify import tesseract_available
from ocr.reader.reasons import ReasonCode
from ocr.synth.handwriting import load_bank
from ocr.synth.job import SynthJob, synthesize_tps
from ocr.templates.catalog import get_template, load_templates
from ocr.templates.family import expand_family
from ocr.templates.file import TemplateFamily
from ocr.templates.render import render_page
from tests.conftest import REPO

TEMPLATES = tuple(load_templates().values())


@pytest.fixture(scope="module")
def bank():
    return load_bank(None)


def _tps(tmp_path_factory, bank, template_id: str, seed: int, profile: str) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp(f"{template_id}-{seed}")
    truth = synthesize_tps(get_template(template_id), 1, SynthJob(template_id, 1, out, seed=seed, profile=profile),
                           bank, False)
    return truth, out / "tps-0001"


def _box_errors_mm(alignment, photo_truth: dict) -> np.ndarray:
    errors = []
    for field in alignment.template.page(alignment.page_number).fields:
        truth = np.array(photo_truth["boxes_px"][field.id])
        for estimated, true, box in zip(alignment.box_corners(field.id), truth, field.boxes_mm):
            px_per_mm = np.linalg.norm(true[1] - true[0]) / box[2]
            errors.append(np.linalg.norm(estimated - true, axis=1).max() / px_per_mm)
    return np.array(errors)


def _photo(folder, page: int):
    return decode_photo((folder / f"page-{page}.jpg").read_bytes(), f"page-{page}.jpg")


def _jpeg(gray: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


@pytest.mark.parametrize("template_id, seed, profile", [("ppwp-2024", 3, "phone"), ("kwk-bupati-5", 4, "phone"),
                                                        ("kwk-gubernur-tunggal", 5, "scan")])
def test_pages_are_identified_and_boxes_land_within_a_millimetre(tmp_path_factory, bank, template_id, seed, profile):
    truth, folder = _tps(tmp_path_factory, bank, template_id, seed, profile)
    for page, photo_truth in truth["photos"].items():
        alignment = align_page(_photo(folder, int(page)), TEMPLATES)
        assert alignment, alignment
        assert (alignment.template.id, alignment.page_number, alignment.identified_by) == (template_id, int(page), "tag")
        errors = _box_errors_mm(alignment, photo_truth)
        assert errors.mean() < 0.5 and errors.max() < 1.5, (page, errors.mean(), errors.max())
        assert alignment.quality.markers_found == 4 and alignment.quality.tag_read


@pytest.fixture(scope="module")
def scan(tmp_path_factory, bank):
    """A flat, frontal photo of page 2 of a PPWP form and its truth."""
    truth, folder = _tps(tmp_path_factory, bank, "ppwp-2024", 8, "scan")
    return _photo(folder, 2), truth["photos"]["2"]


def test_upside_down_photo(scan):
    photo, _ = scan
    turned = decode_photo(_jpeg(cv2.rotate(photo.gray, cv2.ROTATE_180)), "upside-down.jpg")
    alignment = align_page(turned, TEMPLATES)
    assert alignment and alignment.page_number == 2


def test_one_marker_hidden_by_a_finger(scan):
    photo, truth = scan
    gray = photo.gray.copy()
    x, y = np.round(truth["markers_px"][3]).astype(int)  # bottom left
    cv2.ellipse(gray, (int(x), int(y)), (90, 160), 30, 0, 360, 150, -1)
    alignment = align_page(decode_photo(_jpeg(gray), "finger.jpg"), TEMPLATES)
    assert alignment, alignment
    assert alignment.quality.markers_found == 3
    assert _box_errors_mm(alignment, truth).max() < 1.5


def test_photo_with_no_form():
    rng = np.random.default_rng(1)
    clutter = cv2.GaussianBlur(rng.integers(0, 255, (1500, 2000), dtype=np.uint8), (0, 0), 3)
    refusal = align_page(decode_photo(_jpeg(clutter), "table.jpg"), TEMPLATES)
    assert refusal.code == ReasonCode.NO_PAGE_FOUND


def test_page_cut_in_half(scan):
    photo, _ = scan
    top = photo.gray[: photo.gray.shape[0] // 2]
    refusal = align_page(decode_photo(_jpeg(top), "half.jpg"), TEMPLATES)
    assert refusal.code == ReasonCode.PAGE_CUT_OFF, refusal


def test_heavily_blurred_page(scan):
    photo, _ = scan
    refusal = align_page(decode_photo(_jpeg(cv2.GaussianBlur(photo.gray, (0, 0), 9)), "blur.jpg"), TEMPLATES)
    assert refusal.code == ReasonCode.TOO_BLURRY, refusal


def test_dark_page(scan):
    photo, _ = scan
    dark = cv2.convertScaleAbs(photo.gray, alpha=0.18)
    refusal = align_page(decode_photo(_jpeg(dark), "dark.jpg"), TEMPLATES)
    assert refusal.code == ReasonCode.TOO_DARK, refusal


def test_page_of_another_template_than_named(scan):
    photo, _ = scan
    refusal = align_page(photo, TEMPLATES, template_id="kwk-gubernur-3", page_number=2)
    assert refusal.code == ReasonCode.WRONG_PAGE
    assert "ppwp-2024 page 2" in refusal.message
    refusal = align_page(photo, TEMPLATES, template_id="ppwp-2024", page_number=3)
    assert refusal.code == ReasonCode.WRONG_PAGE


def test_page_whose_tag_no_template_has():
    family = yaml.safe_load((REPO / "templates_forms" / "c_hasil_2024.yaml").read_text())
    family["variants"] = [dict(family["variants"][0], id="ppwp-future", tag_id="19{page}")]
    future = expand_family(TemplateFamily.model_validate(family))[0]
    page = render_page(future, 1, 100)
    canvas = np.full((page.shape[0] + 200, page.shape[1] + 200), 200, np.uint8)
    canvas[100:-100, 100:-100] = page
    refusal = align_page(decode_photo(_jpeg(canvas), "future.jpg"), TEMPLATES)
    assert refusal.code == ReasonCode.UNKNOWN_TEMPLATE
    assert "191" in refusal.message


@pytest.mark.skipif(not tesseract_available(), reason="tesseract-ocr is not installed")
def test_unreadable_tag_falls_back_to_the_printed_title(scan):
    photo, truth = scan
    gray = photo.gray.copy()
    template = get_template("ppwp-2024")
    x, y, w, h = template.tag_rect_mm
    corners = np.array(truth["boxes_px"]["suara_paslon_1"][0])  # any box: its size gives px per mm
    px_per_mm = np.linalg.norm(corners[1] - corners[0]) / 20.0
    homography = np.array(truth["homography_mm_to_px"])
    tag = cv2.perspectiveTransform(np.array([[(x - 1, y - 1), (x + w + 1, y - 1), (x + w + 1, y + h + 1),
                                              (x - 1, y + h + 1)]], np.float64), homography)[0]
    cv2.fillConvexPoly(gray, np.round(tag).astype(np.int32), 235)
    alignment = align_page(decode_photo(_jpeg(gray), "no-tag.jpg"), TEMPLATES)
    assert px_per_mm > 1
    assert alignment, alignment
    assert (alignment.template.id, alignment.page_number, alignment.identified_by) == ("ppwp-2024", 2, "title")


def test_cut_boxes_are_rectified_crops_with_their_frame(scan):
    photo, truth = scan
    alignment = align_page(photo, TEMPLATES)
    crops = cut_boxes(photo.gray, alignment, "suara_paslon_2", size_px=48)
    assert crops.shape == (3, 48, 48) and crops.dtype == np.uint8
    # The printed frame runs along the crop's border region, the paper inside is lighter.
    for crop in crops:
        border = np.concatenate([crop[5:8].ravel(), crop[-8:-5].ravel(), crop[:, 5:8].ravel(), crop[:, -8:-5].ravel()])
        assert border.mean() < crop[14:34, 14:34].mean() + 40


def test_quality_is_reported(scan):
    photo, _ = scan
    quality = align_page(photo, TEMPLATES).quality
    assert quality.sharpness > 0.4 and quality.boxes_seen > 0.9 and 0.8 < quality.page_fraction < 1.0
    assert json.dumps(quality.__dict__)  # plain numbers, ready for a result record


def test_strongly_bent_page_is_refused_not_misread(bank):
    from ocr.synth.camera import PROFILES, photograph, plan_photo
    from ocr.synth.ink import WriterStyle, write_page
    from ocr.synth.values import realistic_values

    template = get_template("ppwp-2024")
    rng = np.random.default_rng(5)
    profile = PROFILES["scan"]
    page = template.page(1)
    filled = write_page(render_page(template, 1, 127), page, realistic_values(template, rng), 5.0,
                        WriterStyle.random(rng), bank, rng).image
    plan = plan_photo(profile, template.page_size_mm, rng)
    # A sheet bowed by 14 mm: far beyond what the per-box refinement follows.
    bowed = type(plan)(frame=plan.frame, homography=plan.homography, bend=(14.0, 1.0, 0.3, 14.0, 1.0, 1.9))
    bent_profile = type(profile)(**{**profile.__dict__, "bend_mm": 14.0})
    jpeg, _ = photograph(filled, 5.0, template.page_size_mm, bowed, bent_profile, rng)
    refusal = align_page(decode_photo(jpeg, "bent.jpg"), TEMPLATES)
    assert refusal.code == ReasonCode.PAGE_NOT_FLAT, refusal


@pytest.mark.parametrize("name", ["chasilppwp2024-h2-1.jpg", "chasilppwp2024-h2-2.jpg"])
def test_real_2024_plano_photos_align(shared_dir, name):
    photo = decode_photo((shared_dir / "real" / name).read_bytes(), name)
    alignment = align_page(photo, TEMPLATES)
    assert alignment, alignment
    assert (alignment.template.id, alignment.page_number, alignment.identified_by) == ("ppwp-2024", 2, "tag")
    assert all(f.measured for f in alignment.boxes if f.field_id.startswith("suara_paslon_") and "baris" not in f.field_id)


def test_real_partial_crop_without_markers_is_refused(shared_dir):
    name = "chasilppwp2024-h2-3.jpg"
    refusal = align_page(decode_photo((shared_dir / "real" / name).read_bytes(), name), TEMPLATES)
    assert refusal.code == ReasonCode.NO_PAGE_FOUND


def test_marker_candidates_keep_the_contours_opencv_sizes_as_before():
    """The sizes of a page's thousand contours are measured for all at once: the same contours as one call each."""
    from ocr.reader.markers import _sized_contours

    rng = np.random.default_rng(7)
    image = np.zeros((600, 800), np.uint8)
    for _ in range(400):  # specks, strokes, squares, rings, tilted blobs
        x, y, w, h = (int(v) for v in rng.integers([0, 0, 1, 1], [790, 590, 40, 40]))
        if rng.random() < 0.3:
            cv2.rectangle(image, (x, y), (x + w, y + h), 255, int(rng.integers(1, 4)))
        else:
            cv2.ellipse(image, (x, y), (w // 2, h // 4), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    contours, _ = cv2.findContours(image, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    limit = 4 * image.size / 200
    one_by_one = [k for k, c in enumerate(contours)
                  if 9 <= cv2.boundingRect(c)[2] * cv2.boundingRect(c)[3] <= limit and cv2.moments(c)["m00"] >= 4]
    assert len(contours) > 300 and 0 < len(one_by_one) < len(contours)
    assert _sized_contours(contours, limit).tolist() == one_by_one


@pytest.mark.parametrize("page_scale, tries", [(0.8, [0.25]), (0.6, [0.25, 0.5])])
def test_markers_are_looked_for_on_a_quarter_size_copy_first_and_a_half_size_one_when_they_are_too_small(
        scan, monkeypatch, page_scale, tries):
    from ocr.reader import locate as locating

    photo, truth = scan
    page = cv2.resize(photo.gray, None, fx=page_scale, fy=page_scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((4000, 3000), 200, np.uint8)  # a 12 MP photo, the page in its middle
    y, x = (4000 - page.shape[0]) // 2, (3000 - page.shape[1]) // 2
    canvas[y:y + page.shape[0], x:x + page.shape[1]] = page
    scales = []
    locate_on = locating._locate_on
    monkeypatch.setattr(locating, "_locate_on", lambda *a: scales.append(a[2]) or locate_on(*a))
    alignment = align_page(decode_photo(_jpeg(canvas), "far.jpg"), TEMPLATES)
    assert alignment, alignment
    assert alignment.page_number == 2 and alignment.quality.markers_found == 4
    assert scales == tries  # at 0.6 the markers are 19 px: under 5 px on the quarter-size copy
    moved = {field_id: (np.array(boxes) * page_scale + (x, y)).tolist() for field_id, boxes in truth["boxes_px"].items()}
    assert _box_errors_mm(alignment, {"boxes_px": moved}).max() < 1.0

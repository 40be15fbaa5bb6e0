"""Reference-image templates: a page with no markers or tag aligned to a scan of it by feature matching.

Without ../shared the reference scan is a page rendered here (its markers and tag are painted out, so only the
feature path can find it); with ../shared/real the shipped C1-PPWP 2019 templates align the real Situng scans.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ocr.reader.align import PageAlignment, align_page, cut_boxes
from ocr.reader.decode import decode_photo
from ocr.reader.line_check import line_agreement, reference_lines
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.reader.reference import MatchSettings, ReferenceMatch, match_reference
from ocr.templates.catalog import get_template, reference_files
from ocr.templates.checks import TemplateError
from ocr.templates.reference_form import MissingReferenceImage, load_reference_file
from ocr.templates.render import render_page
from tests.conftest import SHARED

PX_PER_MM = 3.0
REAL = SHARED / "real"


def _png(gray: np.ndarray) -> bytes:
    return cv2.imencode(".png", gray)[1].tobytes()


def _scan_of(template_id: str, page: int) -> np.ndarray:
    """A blank page at PX_PER_MM with its markers and tag painted out: an 'older form' with only its print."""
    template = get_template(template_id)
    gray = render_page(template, page, PX_PER_MM * 25.4).copy()
    for x, y in template.markers.blocks_mm:
        side = template.markers.square_mm * 2
        gray[int(y * PX_PER_MM) - 2:int((y + side) * PX_PER_MM) + 2, int(x * PX_PER_MM) - 2:int((x + side) * PX_PER_MM) + 2] = 255
    x, y, w, h = template.tag_rect_mm
    gray[int((y - 2) * PX_PER_MM):int((y + h + 2) * PX_PER_MM), int((x - 12) * PX_PER_MM):int((x + w + 2) * PX_PER_MM)] = 255
    return gray


def _reference_file(folder: Path, scan: np.ndarray, template_id: str, page: int, rules: list[dict]) -> Path:
    (folder / "scan.png").write_bytes(_png(scan))
    template = get_template(template_id)
    fields = [{"id": f.id, "boxes_px": [[v * PX_PER_MM for v in box] for box in f.boxes_mm]}
              for f in template.page(page).fields if "_baris_" not in f.id]
    spec = {"reference_form": "test-form", "version": 1, "rules": rules,
            "pages": [{"number": page, "image": "scan.png", "px_per_mm": PX_PER_MM, "fields": fields,
                       "sha256": hashlib.sha256((folder / "scan.png").read_bytes()).hexdigest()}]}
    path = folder / "test-form.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _photo_homography(width: int, height: int) -> np.ndarray:
    """Scan px -> photo px: turned 160 degrees, shrunk, with perspective (a phone held at an angle)."""
    src = np.float32([(0, 0), (width, 0), (width, height), (0, height)])
    dst = np.float32([(1700, 2300), (420, 2050), (560, 260), (1580, 420)])
    return cv2.getPerspectiveTransform(src, dst)


@pytest.fixture(scope="module")
def votes_page(tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("reference")
    scan = _scan_of("kwk-gubernur-3", 3)
    path = _reference_file(folder, scan, "kwk-gubernur-3", 3, [{"expr": "suara_total = suara_sah + suara_tidak_sah"}])
    return load_reference_file(path), scan


def test_page_without_markers_aligns_by_features_to_half_a_millimetre(votes_page):
    template, scan = votes_page
    h = _photo_homography(scan.shape[1], scan.shape[0])
    photo_gray = cv2.warpPerspective(scan, h, (2000, 2600), borderValue=90)
    noisy = np.clip(photo_gray.astype(np.int16) + np.random.default_rng(1).normal(0, 6, photo_gray.shape), 0, 255)
    photo = decode_photo(_png(noisy.astype(np.uint8)), "turned.png")
    result = align_page(photo, (template,))
    assert isinstance(result, PageAlignment), result
    assert (result.template.id, result.page_number, result.identified_by) == ("test-form", 3, "reference")
    assert result.quality.markers_found == 0 and result.quality.inlier_ratio > 0.3
    assert result.quality.boxes_seen == 1.0
    errors = []
    for f in template.page(3).fields:
        truth = cv2.perspectiveTransform(np.array([[(x, y), (x + w, y), (x + w, y + hh), (x, y + hh)]
                                                   for x, y, w, hh in f.boxes_mm]).reshape(1, -1, 2) * PX_PER_MM, h)[0]
        found = result.box_corners(f.id).reshape(-1, 2)
        photo_px_per_mm = np.linalg.norm(truth[1] - truth[0]) / f.boxes_mm[0][2]
        errors.extend(np.linalg.norm(found - truth, axis=1) / photo_px_per_mm)
    assert np.mean(errors) <= 0.5 and np.max(errors) <= 1.5, (np.mean(errors), np.max(errors))
    assert cut_boxes(photo.gray, result, "suara_total").shape == (3, 48, 48)


def test_a_match_with_few_features_stands_only_where_the_printed_lines_agree(votes_page):
    """Every feature fit taken as weak (min_inliers out of reach): the right page is still found, placed as the
    features place it, because its printed lines agree (line_check.py); the same lines moved 8 mm disagree; another
    page's scan, whose print differs, is refused."""
    template, scan = votes_page
    h = _photo_homography(scan.shape[1], scan.shape[0])
    photo = cv2.warpPerspective(scan, h, (2000, 2600), borderValue=90)
    weak_only = MatchSettings(min_inliers=10**6)
    match = match_reference(photo, (template,), weak_only)
    assert isinstance(match, ReferenceMatch), match
    strong = match_reference(photo, (template,))
    assert np.allclose(match.page_homography, strong.page_homography)
    lines = reference_lines(scan, PX_PER_MM)
    right = line_agreement(photo, match.page_homography, lines)
    moved = line_agreement(photo, match.page_homography @ np.array([[1, 0, 8.0], [0, 1, 0], [0, 0, 1]]), lines)
    assert right >= weak_only.min_line_agreement > moved, (right, moved)
    other = _scan_of("kwk-gubernur-3", 1)
    assert match_reference(other, (template,), weak_only).code == ReasonCode.NO_PAGE_FOUND


def test_another_page_and_a_blank_photo_are_refused(votes_page):
    template, _ = votes_page
    other = decode_photo(_png(_scan_of("kwk-gubernur-3", 1)), "page-1.png")
    refused = align_page(other, (template,))
    assert isinstance(refused, Refusal) and refused.code == ReasonCode.NO_PAGE_FOUND, refused
    blank = decode_photo(_png(np.full((1200, 900), 200, np.uint8)), "wall.png")
    assert align_page(blank, (template,)).code == ReasonCode.NO_PAGE_FOUND


def test_missing_or_changed_reference_scan_makes_the_template_unavailable(votes_page, tmp_path):
    _, scan = votes_page
    path = _reference_file(tmp_path, scan, "kwk-gubernur-3", 3, [])
    (tmp_path / "scan.png").write_bytes(_png(scan[:-1]))
    with pytest.raises(MissingReferenceImage, match="another sha256"):
        load_reference_file(path)
    (tmp_path / "scan.png").unlink()
    with pytest.raises(MissingReferenceImage, match="not found"):
        load_reference_file(path)


def test_reference_file_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"reference_form": "bad", "version": 1, "pages": [
        {"number": 1, "image": "x.png", "sha256": "0" * 64, "px_per_mm": 5, "fields": [{"id": "a"}]}]}))
    with pytest.raises(TemplateError, match="give either box_edges_px or boxes_px"):
        load_reference_file(path)


def test_shipped_reference_templates_are_valid_files():
    """Every shipped reference file parses; without its scan it is unavailable, never broken."""
    assert {p.stem for p in reference_files()} >= {"c1-ppwp-2019-lembar-1", "c1-ppwp-2019-lembar-2"}
    for path in reference_files():
        try:
            load_reference_file(path)
        except MissingReferenceImage:
            pass


@pytest.mark.skipif(not (REAL / "labels.json").is_file(), reason="../shared/real is absent")
def test_real_scans_align_and_refuse_other_forms(monkeypatch):
    monkeypatch.setenv("FORMC_REFERENCE_IMAGES", str(REAL))
    templates = tuple(load_reference_file(p) for p in reference_files())
    labels = json.loads((REAL / "labels.json").read_text())
    # Held out: scans other than the two the boxes were measured on.
    held_out = (("c1ppwp2019-l2-5.png", "c1-ppwp-2019-lembar-2", 2), ("c1ppwp2019-l2-27.png", "c1-ppwp-2019-lembar-2", 2),
                ("c1ppwp2019-l1-2.png", "c1-ppwp-2019-lembar-1", 1))
    for name, form, page in held_out:
        assert labels[name]["page"] == page
        result = align_page(decode_photo((REAL / name).read_bytes(), name), templates)
        assert isinstance(result, PageAlignment), (name, result)
        assert (result.template.id, result.page_number) == (form, page)
        assert result.quality.boxes_seen >= 0.6 and result.quality.residual_mm < 0.5
    # Other scans of the learned 2014 Lampiran: their few common features stand where the printed lines agree.
    for name in ("c1ppwp2014-lamp-2.jpg", "c1ppwp2014-lamp-4.jpg"):
        result = align_page(decode_photo((REAL / name).read_bytes(), name), templates)
        assert isinstance(result, PageAlignment) and result.template.id == "c1-ppwp-2014-lampiran-1", (name, result)
    for name in ("chasilppwp2024-h2-3.jpg",):  # a crop of a 2024 page without its markers: no reference template
        result = align_page(decode_photo((REAL / name).read_bytes(), name), templates)
        assert isinstance(result, Refusal) and result.code == ReasonCode.NO_PAGE_FOUND, (name, result)

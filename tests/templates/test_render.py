import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ocr.templates.catalog import get_template
from ocr.templates.render import page_boxes, render_page, render_pdf
from tests.conftest import REPO

CASES = [("ppwp-2024", 1, 60), ("ppwp-2024", 2, 75), ("kwk-gubernur-6", 2, 50), ("kwk-bupati-tunggal", 3, 100)]


@pytest.mark.parametrize("template_id, page, dpi", CASES)
def test_boxes_json_matches_the_drawing(template_id, page, dpi):
    image = render_page(get_template(template_id), page, dpi)
    boxes = page_boxes(get_template(template_id), page, dpi)
    assert (boxes["width"], boxes["height"]) == (image.shape[1], image.shape[0])
    for field_id, entry in boxes["fields"].items():
        for x, y, w, h in entry["boxes"]:
            # The frame is ink on all four edges at the reported coordinates ...
            for edge in (image[y, x:x + w], image[y + h, x:x + w], image[y:y + h, x], image[y:y + h, x + w]):
                assert np.mean(edge < 100) > 0.95, (field_id, (x, y, w, h))
            # ... and just inside it the paper is blank (a seven-segment guide stays faint).
            inner = image[y + 3:y + h - 2, x + 3:x + w - 2]
            assert inner.min() > 150, field_id


def test_bubbles_are_drawn_where_reported():
    template = get_template("ppwp-2024")
    image = render_page(template, 2, 100)
    entry = page_boxes(template, 2, 100)["fields"]["suara_paslon_3"]
    assert len(entry["bubbles"]) == 3
    for column in entry["bubbles"]:
        assert len(column) == 10
        for x, y, w, h in column:
            # A printed ring in the annulus 0.8 r .. 1.15 r around the reported centre, all the way round.
            yy, xx = np.mgrid[y - 5:y + h + 5, x - 5:x + w + 5]
            r = np.hypot(xx - (x + w / 2), yy - (y + h / 2)) / (w / 2)
            angle = np.arctan2(yy - (y + h / 2), xx - (x + w / 2))
            dark = (image[y - 5:y + h + 5, x - 5:x + w + 5] < 128) & (r > 0.8) & (r < 1.15)
            octants = set(((angle[dark] + np.pi) / (np.pi / 4)).astype(int) % 8)
            assert octants == set(range(8)), (x, y)
    assert "bubbles" not in page_boxes(get_template("kwk-gubernur-3"), 2, 100)["fields"]["suara_paslon_3"]


@pytest.mark.parametrize("template_id, page, dpi", [("kwk-gubernur-3", 2, 60), ("kwk-bupati-tunggal", 3, 100)])
def test_tally_cells_are_drawn_where_reported(template_id, page, dpi):
    template = get_template(template_id)
    image = render_page(template, page, dpi)
    fields = page_boxes(template, page, dpi)["fields"]
    grids = template.page(page).tally_grids
    assert grids and {g.field_id for g in grids} == {k for k, entry in fields.items() if "tally_cells" in entry}
    for grid in grids:
        assert list(fields[grid.field_id]) == ["boxes", "tally_cells"]  # the number's own keys are as they were
        cells = fields[grid.field_id]["tally_cells"]
        assert [len(row) for row in cells] == [grid.cols] * grid.rows
        for above, below in zip(cells, cells[1:]):  # rows top to bottom, cells left to right, sharing their lines
            assert [y + h for _, y, _, h in above] == [y for _, y, _, _ in below]
        for row in cells:
            assert [x + w for x, _, w, _ in row[:-1]] == [x for x, _, _, _ in row[1:]]
            for x, y, w, h in row:
                # A grey printed line on all four edges at the reported coordinates, blank paper inside.
                for edge in (image[y, x:x + w], image[y + h, x:x + w], image[y:y + h, x], image[y:y + h, x + w]):
                    assert np.mean(edge < 200) > 0.95, (grid.field_id, (x, y, w, h))
                assert image[y + 2:y + h - 1, x + 2:x + w - 1].min() > 200, grid.field_id
    assert not any("tally_cells" in entry for entry in page_boxes(template, 1, dpi)["fields"].values())


@pytest.mark.parametrize("template_id, page", [("ppwp-2024", 1), ("kwk-walikota-5", 2), ("kwk-gubernur-tunggal", 3)])
def test_page_tag_decodes_to_the_page_id(template_id, page):
    template = get_template(template_id)
    image = render_page(template, page, 50)
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h10)
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary).detectMarkers(image)
    assert ids is not None and ids.ravel().tolist() == [template.page(page).tag_id]
    # The tag's first corner is at the bottom right of its rectangle: turned 180 degrees, as on the official plano.
    x, y, w, h = template.tag_rect_mm
    assert np.linalg.norm(corners[0][0][0] - np.array([x + w, y + h]) * 50 / 25.4) < 2.0


def test_corner_markers_are_checker_blocks():
    template = get_template("kwk-bupati-2")
    scale = 80 / 25.4
    image = render_page(template, 1, 80)
    s = template.markers.square_mm
    for bx, by in template.markers.blocks_mm:
        def at(dx, dy):
            return image[round((by + dy) * scale), round((bx + dx) * scale)]
        assert at(s / 2, s / 2) == 0 and at(1.5 * s, 1.5 * s) == 0  # black on the diagonal
        assert at(1.5 * s, s / 2) == 255 and at(s / 2, 1.5 * s) == 255  # white off it


def test_pdf_has_every_page_at_true_size(tmp_path):
    pymupdf = pytest.importorskip("pymupdf")
    path = tmp_path / "kwk.pdf"
    render_pdf(get_template("kwk-gubernur-4"), 30, path)
    doc = pymupdf.open(path)
    assert doc.page_count == 3
    for page in doc:
        assert page.rect.width * 25.4 / 72 == pytest.approx(600, abs=1.0)
        assert page.rect.height * 25.4 / 72 == pytest.approx(900, abs=1.0)


def test_cli_render_and_boxes_agree(tmp_path):
    out = tmp_path / "page.png"
    cmd = [sys.executable, str(REPO / "cli.py"), "template"]
    subprocess.run(cmd + ["render", "kwk-gubernur-3", "--page", "2", "--dpi", "40", "--out", str(out)], check=True)
    run = subprocess.run(cmd + ["boxes", "kwk-gubernur-3", "--page", "2", "--dpi", "40"], check=True,
                         capture_output=True, text=True)
    boxes = json.loads(run.stdout)
    image = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert (boxes["width"], boxes["height"]) == (image.shape[1], image.shape[0])
    assert set(boxes["fields"]) >= {"suara_paslon_1", "suara_paslon_3_baris_5"}
    assert [len(row) for row in boxes["fields"]["suara_paslon_1"]["tally_cells"]] == [12] * 5
    bad = subprocess.run(cmd + ["boxes", "kwk-gubernur-3", "--page", "7"], capture_output=True, text=True)
    assert bad.returncode == 2 and "has pages [1, 2, 3]" in bad.stderr

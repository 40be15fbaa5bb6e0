"""Counting tally marks with the shipped cell model on rendered pages: counted rows, struck rows, empty grids, and the
strike line through the sum boxes of unused rows."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from ocr.reader.tally import TallyCounter, grid_windows, struck_sum_rows
from ocr.synth.handwriting import load_bank
from ocr.synth.ink import WriterStyle, glyph_string, write_field
from ocr.synth.tally import STRUCK, TallyStyle, draw_tally, strike_boxes
from ocr.templates.catalog import get_template
from ocr.templates.render import rect_px, render_page

SCALE = 6.0  # px per mm of the rendered page
TEMPLATE = get_template("kwk-bupati-2")
STYLE = TallyStyle(fifth="diagonal", slant=0.05, length=0.65, pitch=0.15, thickness_mm=0.5, wobble=0.01,
                   overshoot=0.0, strike="z", reach=0.05)


@pytest.fixture(scope="module")
def counter():
    return TallyCounter()


def marked_page(rows: list[int], style: TallyStyle, seed: int = 1) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Page 2 with `rows` marked in the first grid, blurred a little like a photo; its page homography; the labels."""
    page = render_page(TEMPLATE, 2, SCALE * 25.4)
    grid = TEMPLATE.page(2).tally_grids[0]
    mask = np.zeros(page.shape, np.uint8)
    labels = draw_tally(mask, grid, rows, SCALE, style, np.random.default_rng(seed))
    inked = cv2.GaussianBlur(cv2.subtract(page, (mask * 0.85).astype(np.uint8)), (3, 3), 0.8)
    return inked, np.diag([SCALE, SCALE, 1.0]), labels.rows


@pytest.mark.parametrize("fifth", ["diagonal", "falling", "horizontal", "square"])
def test_rows_are_counted_and_unused_rows_struck(counter, fifth):
    gray, homography, truth = marked_page([60, 23, 0, 0, 0], replace(STYLE, fifth=fifth))
    assert truth == [60, 23, STRUCK, STRUCK, STRUCK]
    rows = counter.read_grid(gray, homography, TEMPLATE.page(2).tally_grids[0])
    assert [r.status for r in rows] == ["counted", "counted", "struck", "struck", "struck"]
    assert [r.count for r in rows] == [60, 23, 0, 0, 0]
    assert rows[1].p > 0.9
    assert [r.field_id for r in rows] == [f"suara_paslon_1_baris_{r}" for r in range(1, 6)]


def test_rows_left_empty_after_the_marks_count_zero(counter):
    gray, homography, _ = marked_page([37, 0, 0, 0, 0], replace(STYLE, strike="none"))
    rows = counter.read_grid(gray, homography, TEMPLATE.page(2).tally_grids[0])
    assert [(r.status, r.count) for r in rows] == [("counted", 37)] + [("counted", 0)] * 4


def test_an_empty_grid_is_no_evidence(counter):
    gray, homography, _ = marked_page([0, 0, 0, 0, 0], STYLE)
    rows = counter.read_grid(gray, homography, TEMPLATE.page(2).tally_grids[0])
    assert {r.status for r in rows} == {"none"} and {r.count for r in rows} == {None}


def test_windows_are_one_per_cell_row_by_row():
    gray, homography, _ = marked_page([3, 0, 0, 0, 0], replace(STYLE, strike="none"))
    grid = TEMPLATE.page(2).tally_grids[0]
    windows = grid_windows(gray, homography, grid)
    assert windows.shape == (grid.rows * grid.cols, 44, 64)
    darkest = windows.reshape(len(windows), -1).min(axis=1)
    assert darkest[0] < darkest[grid.cols + 5]  # the marked first cell is darker than an empty one below


def summed_page(written: list[int | None], filler: str = "X", seed: int = 2) -> np.ndarray:
    """Page 2 with the first grid's row sums written (None: the row struck out, one line through those rows' boxes,
    bottom left to top right); blurred a little like a photo."""
    page = render_page(TEMPLATE, 2, SCALE * 25.4)
    fields = {f.id: f for f in TEMPLATE.page(2).fields}
    rng = np.random.default_rng(seed)
    style = replace(WriterStyle.random(rng), filler=filler, sloppy=0.0, size=0.8, ink="black", strength=0.9)
    mask = np.zeros(page.shape, np.uint8)
    struck = []
    for field_id, value in zip(TEMPLATE.page(2).tally_grids[0].row_field_ids, written):
        field = fields[field_id]
        if value is None:
            struck += [rect_px(b, SCALE) for b in field.boxes_mm]
        else:
            write_field(mask, field, glyph_string(value, len(field.boxes_mm), filler), SCALE, style, load_bank(None), rng)
    if struck:
        strike_boxes(mask, struck, 3, rng)
    return cv2.GaussianBlur(cv2.subtract(page, (mask * 0.85).astype(np.uint8)), (3, 3), 0.8)


def sum_boxes() -> tuple[tuple[tuple[float, float, float, float], ...], ...]:
    fields = {f.id: f for f in TEMPLATE.page(2).fields}
    return tuple(fields[f].boxes_mm for f in TEMPLATE.page(2).tally_grids[0].row_field_ids)


@pytest.mark.parametrize("written", [[60, 23, None, None, None], [41, 17, 8, 2, None], [5, None, None, None, None]])
def test_a_strike_line_through_unused_rows_sum_boxes_is_found(written):
    gray = summed_page(written)
    assert struck_sum_rows(gray, np.diag([SCALE, SCALE, 1.0]), sum_boxes()) == tuple(v is None for v in written)


@pytest.mark.parametrize("filler", ["X", "-"])
def test_digits_and_fillers_are_no_strike_line(filler):
    for seed in range(4):
        gray = summed_page([11, 17, 71, 0, 4], filler, seed=seed)
        assert struck_sum_rows(gray, np.diag([SCALE, SCALE, 1.0]), sum_boxes()) == (False,) * 5, seed


def test_ones_in_a_column_are_no_strike_line():
    gray = summed_page([11, 11, 11, 11, 11])  # each 1 over the 1 below, as one line would run
    assert struck_sum_rows(gray, np.diag([SCALE, SCALE, 1.0]), sum_boxes()) == (False,) * 5


def test_rows_whose_sum_boxes_are_struck_read_as_unused(counter):
    gray, homography, _ = marked_page([37, 0, 0, 0, 0], replace(STYLE, strike="none"))
    struck = summed_page([37, None, None, None, None])
    gray = np.minimum(gray, struck)  # the marks, no strike over the grid, and the line through the sum boxes
    rows = counter.read_grid(gray, homography, TEMPLATE.page(2).tally_grids[0], sum_boxes())
    assert [(r.status, r.count, r.sum_struck) for r in rows] == [("counted", 37, False)] + [("struck", 0, True)] * 4
    unlooked = counter.read_grid(gray, homography, TEMPLATE.page(2).tally_grids[0])
    assert [r.status for r in unlooked] == ["counted"] * 5

"""The tally channel in the verdict: counted marks weighed into the row sums, struck rows read as unused, a sure count
against confidently written digits or against a strike through the row's sum boxes flagged, an empty grid no
evidence."""

import numpy as np
import pytest

from ocr.reader.digits import CLASSES
from ocr.reader.fields import FieldRead, field_candidates, with_count
from ocr.reader.reasons import FindingCode
from ocr.reader.tally import STRUCK_CLASS, RowTally, rows_of
from ocr.reader.verdict import Policy, decide
from ocr.synth.ink import glyph_string
from ocr.synth.values import realistic_values
from ocr.templates.catalog import get_template

TEMPLATE = get_template("kwk-bupati-2")
C = {c: i for i, c in enumerate(CLASSES)}
ROW = "suara_paslon_1_baris_1"


def box_probs(written: str, p: float = 0.999999) -> np.ndarray:
    probs = np.full((len(written), 13), (1 - p) / 12)
    for i, ch in enumerate(written):
        probs[i, C["blank"] if ch == " " else C[ch]] = p
    return probs


def counted(field_id: str, count: int, p: float = 0.999) -> RowTally:
    counts = np.full(61, (1 - p) / 60)
    counts[count] = p
    return RowTally(field_id, "counted", tuple(counts), ())


@pytest.fixture
def values():
    return realistic_values(TEMPLATE, np.random.default_rng(5))


def read(values: dict, override: dict | None = None, tallies: dict | None = None, policy: Policy = Policy()):
    fields = {}
    for f, v in values.items():
        p = (override or {}).get(f, box_probs(glyph_string(v, len(TEMPLATE.fields[f].boxes_mm), "X")))
        fields[f] = FieldRead(f, TEMPLATE.fields[f].page, len(p), tally=(tallies or {}).get(f))
        fields[f].set_probs(p)
    return decide(TEMPLATE, fields, policy)


def doubtful(value: int, wrong: str) -> np.ndarray:
    """Two boxes of `value` whose last box is as likely `wrong` as right."""
    written = glyph_string(value, 2, "X")
    probs = box_probs(written)
    probs[1, C[written[1]]], probs[1, C[wrong]] = 0.5, 0.5
    return probs


def test_marks_settle_a_doubtful_row_sum(values):
    v = values[ROW]
    wrong = "7" if str(v)[-1] != "7" else "1"
    without = read(values, {ROW: doubtful(v, wrong)}, policy=Policy(use_rules=False)).fields[ROW]
    assert without.status == "review"
    verdict = read(values, {ROW: doubtful(v, wrong)}, {ROW: counted(ROW, v)}, Policy(use_rules=False))
    assert (verdict.fields[ROW].status, verdict.fields[ROW].value) == ("ok", v)


def test_a_sure_count_against_confident_digits_is_a_conflict(values):
    v = values[ROW]
    verdict = read(values, tallies={ROW: counted(ROW, v + 1)})
    field = verdict.fields[ROW]
    assert field.status == "review" and field.value == v  # the digits as written, for a person
    conflict = [r for r in field.reasons if r.code == FindingCode.TALLY_CONFLICT]
    assert conflict and conflict[0].detail == f"{ROW} tally {v + 1} vs written {v}"
    assert verdict.status == "review"


def test_a_full_row_agrees_with_any_sum_of_60_or_more():
    assert counted(ROW, 60).agrees(60) and counted(ROW, 60).agrees(75) and not counted(ROW, 59).agrees(60)


def test_struck_row_reads_as_unused_whatever_its_boxes(values):
    row = "suara_paslon_1_baris_5"
    assert values[row] == 0
    struck = RowTally(row, "struck", cells=(STRUCK_CLASS,) * 12)
    slashed = box_probs("11", p=0.9)  # a strike through two boxes, read as ones
    verdict = read(values, {row: slashed}, {row: struck})
    field = verdict.fields[row]
    assert (field.value, field.status) == (0, "ok") and FindingCode.ROW_STRUCK in [r.code for r in field.reasons]
    alone = read(values, {row: slashed}).fields[row]  # without the marks the slash is no unused row
    assert not (alone.value == 0 and alone.status == "ok")


def test_marks_counted_in_a_row_whose_sum_boxes_are_struck_is_a_conflict(values):
    row = "suara_paslon_1_baris_5"
    stray = RowTally(row, "counted", counted(row, 1).counts, (), sum_struck=True)  # the strike read as one mark
    verdict = read(values, {row: box_probs(" 1")}, {row: stray})  # ... and the slash in its box as a 1
    field = verdict.fields[row]
    assert field.status == "review" and verdict.status == "review"
    assert [r.detail for r in field.reasons if r.code == FindingCode.TALLY_CONFLICT] == \
        [f"{row} tally 1 vs a strike line through its sum boxes"]


def test_empty_or_struck_grid_is_no_evidence():
    grid = TEMPLATE.page(2).tally_grids[0]
    empty = np.zeros((grid.rows, grid.cols, 7))
    empty[..., 0] = 1.0
    assert {r.status for r in rows_of(grid, empty)} == {"none"}
    struck = np.zeros((grid.rows, grid.cols, 7))
    struck[..., STRUCK_CLASS] = 1.0
    assert {r.status for r in rows_of(grid, struck)} == {"none"}
    assert all(r.count is None for r in rows_of(grid, struck))


def test_rows_count_their_cells_and_unused_rows_after_marks_are_struck_or_zero():
    grid = TEMPLATE.page(2).tally_grids[0]
    probs = np.zeros((grid.rows, grid.cols, 7))
    probs[..., 0] = 1.0
    probs[0, :, :] = np.eye(7)[5]  # row 1: 60
    probs[1, :3] = np.eye(7)[5]  # row 2: 5 + 5 + 5 + 2, then a strike to the row's end
    probs[1, 3] = np.eye(7)[2]
    probs[1, 4:] = np.eye(7)[STRUCK_CLASS]
    probs[2:, :] = np.eye(7)[STRUCK_CLASS]  # rows 3-4 struck out
    probs[4, :] = np.eye(7)[0]  # row 5 left empty
    rows = rows_of(grid, probs)
    assert [r.status for r in rows] == ["counted", "counted", "struck", "struck", "counted"]
    assert [r.count for r in rows] == [60, 17, 0, 0, 0]


def test_a_strike_through_the_sum_boxes_makes_a_doubtful_row_unused_never_a_row_with_groups_of_five():
    grid = TEMPLATE.page(2).tally_grids[0]
    probs = np.zeros((grid.rows, grid.cols, 7))
    probs[..., 0] = 1.0
    probs[0, :4] = np.eye(7)[5]  # row 1: 20, surely
    probs[1, 0] = [0.3, 0.7, 0, 0, 0, 0, 0]  # row 2: a stray stroke of the strike line read as a mark in its first cell
    probs[2, 0] = [0.001, 0.999, 0, 0, 0, 0, 0]  # row 3: one mark, surely
    lined = (True, True, True, False, False)  # the line through the sum boxes, as a reader may see it
    assert [(r.status, r.count) for r in rows_of(grid, probs, lined)] == \
        [("counted", 20), ("struck", 0), ("counted", 1), ("counted", 0), ("counted", 0)]
    # Row 1's groups of five say it was used (the line is a misread); row 3's one mark against the line: a person.
    assert [r.sum_struck for r in rows_of(grid, probs, lined)] == [False, True, True, False, False]
    assert [(r.status, r.count) for r in rows_of(grid, probs)][1] == ("counted", 1)


def test_weighing_keeps_the_residual_a_bound():
    c = field_candidates(ROW, box_probs("X4", p=0.98))
    weighed = with_count(c, counted(ROW, 9).count_likelihood(1e-3))
    assert 9 in weighed.values and weighed.values[0] in (4, 9)
    for v in range(0, 100):
        if v not in weighed.values:
            assert weighed.probability(v) <= weighed.residual + 1e-15

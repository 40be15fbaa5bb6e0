"""Writer-disjoint splits (train/splits.py) and the restyling glyph bank (train/styles.py)."""

from pathlib import Path

import numpy as np
import pytest

from train.splits import DATA, calibration_half, check_disjoint, femnist_held_out
from train.styles import StyledBank, restyle, stroke_digit


def test_writer_choices_are_fixed_by_the_id():
    ids = [f"f{n:04d}_{k:02d}" for n in range(1500, 1560) for k in (0, 1)]
    held = [femnist_held_out(w) for w in ids]
    assert held == [femnist_held_out(w) for w in ids]  # no random stream: the same writer, the same side
    assert 0.15 < np.mean(held) < 0.5  # about a third
    halves = [calibration_half(w, "cvl") for w in ids]
    assert 0.3 < np.mean(halves) < 0.7
    assert halves != [calibration_half(w, "femnist") for w in ids]  # each corpus halved on its own


@pytest.mark.skipif(not (DATA / "cvl_single_digits_dev.npz").exists(), reason="needs ../shared/data")
def test_held_out_writers_never_train():
    counts = check_disjoint()  # raises on any shared writer
    assert counts["cvl"] == 67 and counts["cvl-calib"] + counts["cvl-test"] == 60


def test_restyled_glyphs_are_new_but_still_ink():
    rng = np.random.default_rng(0)
    glyph = np.zeros((28, 20), np.uint8)
    glyph[2:26, 9:12] = 255  # a plain 1
    bank = StyledBank(augment=True, procedural=0.5)
    bank.add_set("toy", np.array([glyph] * 3), np.array(["1"] * 3))
    outs = [bank.sample("1", rng) for _ in range(20)]
    assert all(o.dtype == np.uint8 and (o > 100).sum() > 20 for o in outs)
    assert len({o.shape for o in outs}) > 5  # slant, width, size and allographs vary
    assert bank.sample("7", rng) is None and bank.count("1") == 3
    for digit in "0123456789":
        assert (stroke_digit(digit, rng) > 100).sum() > 30
    assert restyle(glyph, rng).ndim == 2


def test_pipeline_script_is_present():
    assert (Path(__file__).resolve().parents[2] / "train" / "unseen_pipeline.sh").exists()

"""The PPWP 2024 template against the official plano (needs ../shared; skipped without it)."""

import json

import numpy as np
import pytest

from bench.ppwp_official import pdf_offsets, sirekap_offsets
from ocr.templates.catalog import get_template


def test_boxes_match_the_official_pdf_drawing(shared_dir):
    pytest.importorskip("pymupdf")
    offsets = pdf_offsets(get_template("ppwp-2024"), shared_dir / "forms" / "C.HASIL-PPWP-2024-plano.pdf")
    assert [len(offsets[p]) for p in (1, 2, 3)] == [66, 9, 9]
    assert max(np.linalg.norm(o, axis=1).max() for o in offsets.values()) < 0.05


def test_boxes_within_1mm_of_sirekap_coordinates(shared_dir):
    coordinates = json.loads((shared_dir / "forms" / "ppwp-2024-box-coordinates.json").read_text())
    offsets = sirekap_offsets(get_template("ppwp-2024"), coordinates)
    assert sum(len(o) for o in offsets.values()) == 84
    assert max(np.linalg.norm(o, axis=1).max() for o in offsets.values()) < 1.0

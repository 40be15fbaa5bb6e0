import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ocr.templates.catalog import load_templates
from ocr.templates.checks import TemplateError
from ocr.templates.family import load_family_file
from ocr.templates.file import family_schema
from tests.conftest import REPO

ELECTIONS = ("gubernur", "bupati", "walikota")
BALLOTS = ("tunggal", "2", "3", "4", "5", "6")


def test_shipped_templates_cover_the_issue():
    templates = load_templates()
    expected = {"ppwp-2024"} | {f"kwk-{e}-{b}" for e in ELECTIONS for b in BALLOTS}
    assert set(templates) == expected
    for ballot in ("2", "3", "4", "5", "6"):
        assert templates[f"kwk-bupati-{ballot}"].columns == tuple(f"paslon_{k}" for k in range(1, int(ballot) + 1))
    assert templates["kwk-walikota-tunggal"].columns == ("paslon_1", "kolom_kosong")
    assert "suara_kolom_kosong" in templates["kwk-walikota-tunggal"].fields


def test_tag_ids_are_unique_and_official_for_ppwp():
    templates = load_templates()
    assert [p.tag_id for p in templates["ppwp-2024"].pages] == [101, 102, 103]
    assert [p.tag_id for p in templates["kwk-bupati-4"].pages] == [1241, 1242, 1243]
    tags = [p.tag_id for t in templates.values() for p in t.pages]
    assert len(tags) == len(set(tags))


def test_every_field_of_form_spec_is_present_with_three_boxes():
    t = load_templates()["kwk-gubernur-3"]
    for row in ("dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total", "disabilitas"):
        for k in "lpj":
            assert len(t.fields[f"{row}_{k}"].boxes_mm) == 3
            assert t.fields[f"{row}_{k}"].page == 1
    for f in ("surat_diterima", "surat_digunakan", "surat_rusak", "surat_sisa"):
        assert t.fields[f].page == 1
    for f in ("suara_sah", "suara_tidak_sah", "suara_total"):
        assert t.fields[f].page == 3
    for k in (1, 2, 3):
        assert t.fields[f"suara_paslon_{k}"].page == 2
        assert [len(t.fields[f"suara_paslon_{k}_baris_{r}"].boxes_mm) for r in range(1, 6)] == [2] * 5


def test_bubbles_only_on_ppwp_votes_page():
    t = load_templates()["ppwp-2024"]
    with_bubbles = sorted(f.id for f in t.fields.values() if f.bubbles)
    assert with_bubbles == ["suara_paslon_1", "suara_paslon_2", "suara_paslon_3"]
    columns = t.fields["suara_paslon_1"].bubbles.columns
    assert len(columns) == 3 and all(len(c) == 10 for c in columns)
    # Bubble columns sit under the centre of their box.
    for box, column in zip(t.fields["suara_paslon_1"].boxes_mm, columns):
        assert column[0].centre_mm[0] == pytest.approx(box[0] + box[2] / 2)
        assert column[0].centre_mm[1] > box[1] + box[3]


def test_rules_are_expanded_per_template():
    t = load_templates()["kwk-gubernur-tunggal"]
    exprs = {r.expr for r in t.rules}
    assert "suara_kolom_kosong = sum(suara_kolom_kosong_baris_#)" in exprs
    assert "surat_diterima = dpt_j + ceil(0.025 * dpt_j)" in exprs
    ppwp = {r.expr for r in load_templates()["ppwp-2024"].rules}
    assert "surat_diterima = dpt_j + ceil(0.02 * dpt_j)" in ppwp
    hard = {r.expr for r in t.rules if r.hard}
    assert "suara_total = suara_sah + suara_tidak_sah" in hard
    assert "suara_total <= 1.02 * dpt_j" not in hard


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _mutated(family_text: str, mutate) -> dict:
    data = yaml.safe_load(family_text)
    mutate(data)
    return data


def _problems(tmp_path, family_text, mutate) -> list[str]:
    path = _write(tmp_path, _mutated(family_text, mutate))
    with pytest.raises(TemplateError) as info:
        load_family_file(path)
    assert info.value.source == str(path)
    assert str(path) in str(info.value)
    return info.value.problems


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.pop("family"), "family: Field required"),
    (lambda d: d["markers"].update(square_mm=-1), "markers.square_mm: Input should be greater than 0"),
    (lambda d: d["layouts"]["voters"]["field_grids"][0]["boxes"].update(count="three"),
     "layouts.voters.field_grids.0.boxes.count: Input should be a valid integer"),
    (lambda d: d["layouts"]["voters"].update(colour="red"), "layouts.voters.colour: Extra inputs are not permitted"),
    (lambda d: d["variants"][0].update(layouts=["voters", "nope"]), "variants.0 (ppwp-2024): layouts.1: unknown layout 'nope'"),
    (lambda d: d["rules"].append({"expr": "suara_sah = suara_paslon_9"}), "names unknown field 'suara_paslon_9'"),
    (lambda d: d["rules"].append({"expr": "suara_sah == 1"}), "unexpected '='"),
    (lambda d: d["rules"].append({"expr": "{nothing} = 1"}), "unknown placeholder {nothing}"),
    (lambda d: d["layouts"]["valid_invalid"]["fields"][0]["boxes"].update(origin_mm=[590, 166]), "is off the page"),
    (lambda d: d["layouts"]["valid_invalid"]["fields"][1].update(id="suara_sah"), "duplicate field id 'suara_sah'"),
    (lambda d: d["variants"][0].update(tag_id="112{page}"), "tag id 1121 of kwk-gubernur-2 page 1 is also ppwp-2024 page 1"),
])
def test_validation_errors_name_the_file_and_key(tmp_path, family_text, mutate, expected):
    problems = _problems(tmp_path, family_text, mutate)
    assert any(expected in p for p in problems), problems


def test_all_problems_reported_at_once(tmp_path, family_text):
    def two_errors(d):
        d["markers"]["square_mm"] = 0
        d["tag_rect_mm"] = "here"
    problems = _problems(tmp_path, family_text, two_errors)
    assert len(problems) == 2


def test_not_yaml_and_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: [unclosed")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_family_file(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(TemplateError, match="expected a mapping"):
        load_family_file(bad)


def test_cli_validate_reports_and_exits_3(tmp_path, family_text):
    good = tmp_path / "good.yaml"
    good.write_text(family_text)
    bad = _write(tmp_path, _mutated(family_text, lambda d: d["rules"].append({"expr": "x = 1"})))
    run = subprocess.run([sys.executable, str(REPO / "cli.py"), "template", "validate", str(good), str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 3
    assert "ok, 19 templates" in run.stdout
    assert f"{bad}: variants.0 (ppwp-2024): rules." in run.stderr and "unknown field 'x'" in run.stderr


def test_committed_json_schema_is_current():
    committed = json.loads((REPO / "docs" / "template-schema.json").read_text())
    assert committed == family_schema(), "regenerate: formc template schema > docs/template-schema.json"

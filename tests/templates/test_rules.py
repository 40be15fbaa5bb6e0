import pytest

from ocr.templates.rules import RuleSyntaxError, SumOf, parse_rule

VALUES = {"suara_paslon_1": 40, "suara_paslon_2": 44, "suara_paslon_1_baris_1": 40, "suara_sah": 84,
          "suara_tidak_sah": 3, "suara_total": 87, "dpt_j": 200, "surat_diterima": 205}


def test_equality_with_sum_over_pattern_ignores_longer_ids():
    rule = parse_rule("suara_sah = sum(suara_paslon_#)")
    assert rule.holds(VALUES)
    assert rule.field_ids(VALUES) == {"suara_sah", "suara_paslon_1", "suara_paslon_2"}


def test_sum_over_no_field_is_zero():
    assert parse_rule("suara_sah = sum(suara_paslon_#) + sum(suara_kolom_kosong)").holds(VALUES)


def test_84_read_as_884_breaks_the_sum():
    assert not parse_rule("suara_sah = sum(suara_paslon_#)").holds({**VALUES, "suara_sah": 884})


@pytest.mark.parametrize("text, expected", [
    ("suara_total = suara_sah + suara_tidak_sah", True),
    ("suara_total - suara_tidak_sah = suara_sah", True),
    ("suara_total <= 1.02 * dpt_j", True),
    ("suara_total > dpt_j", False),
    ("surat_diterima = dpt_j + ceil(0.025 * dpt_j)", True),  # 0.025 * 200 = 5 exactly, not 6
    ("surat_diterima = dpt_j + ceil(0.02 * (dpt_j + 1))", True),
    ("suara_sah >= suara_total", False),
])
def test_evaluation(text, expected):
    assert parse_rule(text).holds(VALUES) is expected


def test_tolerance_applies_to_equality():
    rule = parse_rule("surat_diterima = dpt_j + 3")
    assert not rule.holds(VALUES)
    assert rule.holds(VALUES, tolerance=2)


def test_pattern_matches_whole_numbers_only():
    assert SumOf("suara_paslon_#").matches(["suara_paslon_10", "suara_paslon_x", "suara_paslon_2_baris_1"]) == [
        "suara_paslon_10"]


@pytest.mark.parametrize("text, message", [
    ("suara_sah + suara_total", "ends early"),
    ("suara_sah == suara_total", "unexpected '='"),
    ("__import__('os').system('true') = 1", "unexpected character"),
    ("suara_sah = suara_total; 1", "unexpected character ';'"),
    ("suara_paslon_# = 3", "outside sum()"),
    ("suara_sah = sum(3)", "field pattern"),
    ("suara_sah = (suara_total", "ends early"),
    ("suara_sah = suara_total suara_tidak_sah", "unexpected 'suara_tidak_sah'"),
    ("suara_sah.real = 1", "unexpected character '.'"),
])
def test_syntax_errors_say_what_and_where(text, message):
    with pytest.raises(RuleSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rule(text)

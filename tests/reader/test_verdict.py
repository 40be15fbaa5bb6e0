"""Field and submission statuses, each with its reason, on a whole KWK form's worth of fields."""

import math

import numpy as np
import pytest

from ocr.reader.digits import CLASSES
from ocr.reader.fields import FieldRead
from ocr.reader.reasons import Finding, FindingCode
from ocr.reader.verdict import Policy, decide
from ocr.synth.ink import glyph_string
from ocr.synth.values import make_inconsistent, realistic_values
from ocr.templates.catalog import get_template

TEMPLATE = get_template("kwk-bupati-2")
C = {c: i for i, c in enumerate(CLASSES)}


def box_probs(written: str, p: float = 0.999999) -> np.ndarray:
    probs = np.full((len(written), 13), (1 - p) / 12)
    for i, ch in enumerate(written):
        probs[i, C["blank"] if ch == " " else C[ch]] = p
    return probs


@pytest.fixture
def values():
    return realistic_values(TEMPLATE, np.random.default_rng(5))


def read(values: dict, override: dict | None = None, policy: Policy = Policy(), flags: dict | None = None,
         doubts: dict | None = None):
    probs = {f: box_probs(glyph_string(values[f], len(TEMPLATE.fields[f].boxes_mm), "X")) for f in values}
    probs.update(override or {})
    fields = {}
    for f, p in probs.items():
        fields[f] = FieldRead(f, TEMPLATE.fields[f].page, len(p), flags=list((flags or {}).get(f, [])),
                              doubts=list((doubts or {}).get(f, [])))
        fields[f].set_probs(p)
    return decide(TEMPLATE, fields, policy)


def test_clean_form_is_ok(values):
    verdict = read(values)
    assert verdict.status == "ok" and verdict.reasons == ()
    assert all(v.status == "ok" and v.value == values[f] for f, v in verdict.fields.items())
    assert all(holds for _, holds, hard in verdict.checks if hard)


def test_misread_box_is_corrected_by_the_rules_and_both_values_kept(values):
    field = "suara_paslon_1"
    written = glyph_string(values[field], 3, "X")
    probs = box_probs(written)
    wrong = "8" if written[0] != "8" else "6"
    probs[0, C[wrong]], probs[0, C[written[0]]] = 0.7, 0.3  # 84 read as 884
    verdict = read(values, {field: probs})
    v = verdict.fields[field]
    assert (v.status, v.value) == ("corrected", values[field])
    assert v.read_value != values[field] and Finding(FindingCode.CORRECTED_BY_RULES, f"read {v.read_value}") in v.reasons
    assert verdict.status == "ok"


def test_doubtful_read_without_rules_goes_to_review(values):
    field = "suara_paslon_2"
    written = glyph_string(values[field], 3, "X")
    probs = box_probs(written)
    other = "1" if written[2] != "1" else "7"
    probs[2, C[written[2]]], probs[2, C[other]] = 0.6, 0.4
    verdict = read(values, {field: probs}, Policy(use_rules=False))
    v = verdict.fields[field]
    assert v.status == "review" and v.value == values[field] and any(r.code == FindingCode.LOW_MARGIN for r in v.reasons)
    assert verdict.status == "review"
    assert read(values, {field: probs}).fields[field].status in ("ok", "corrected")  # the sums settle it


def test_a_doubtful_box_only_the_rules_confirm_needs_a_corrections_margin(values):
    """One writer's 4 read as 6 in dpt_l and in dpt_j keeps dpt_l + dpt_p = dpt_j: the rule cannot tell two agreeing
    misreads from the truth, so a read its own boxes doubt needs the corrected margin, not the ok one."""
    values = dict(values, dpt_l=154, dpt_p=200, dpt_j=354)
    doubtful = {}
    for field, p_six in (("dpt_l", 0.85), ("dpt_j", 0.9)):
        probs = box_probs(str(values[field]))
        probs[2, C["6"]], probs[2, C["4"]] = p_six, 0.99 - p_six
        doubtful[field] = probs
    v = read(values, doubtful).fields["dpt_l"]
    assert v.value == 156 and v.status == "review" and any(r.code == FindingCode.LOW_MARGIN for r in v.reasons)
    assert 3 < -math.log(1 / v.confidence - 1) < 5  # past the ok margin: only the correction's margin sends it


def test_a_change_the_size_of_a_slip_overrules_only_a_doubtful_box(values):
    """The rules want paslon 1's number; its last box leans to a digit one off. At 0.95 against 0.03 that would be a
    misread, but an officer's slip (off by one) is as likely: the form goes to a person as written. At 0.5 against
    0.48 the box itself is in doubt and the rules settle it."""
    field = "suara_paslon_1"
    written = glyph_string(values[field], 3, "X")
    other = str(int(written[2]) - 1) if written[2] != "0" else "1"
    for p_other, status, value in ((0.95, "review", int(written[:2].replace("X", "") + other)),
                                   (0.5, "corrected", values[field])):
        probs = box_probs(written)
        probs[2, C[other]], probs[2, C[written[2]]] = p_other, 0.98 - p_other
        verdict = read(values, {field: probs})
        assert (verdict.fields[field].status, verdict.fields[field].value) == (status, value)
        assert verdict.status == ("review" if status == "review" else "ok")


def test_empty_field_is_unreadable(values):
    verdict = read(values, {"suara_tidak_sah": box_probs("   ")})
    v = verdict.fields["suara_tidak_sah"]
    assert (v.status, v.value) == ("unreadable", None) and Finding(FindingCode.EMPTY_FIELD) in v.reasons
    assert verdict.status == "review"


def test_honestly_inconsistent_form_is_reported_as_written_and_reviewed():
    rng = np.random.default_rng(8)
    values, slip = make_inconsistent(TEMPLATE, realistic_values(TEMPLATE, rng), rng)
    verdict = read(values)
    assert verdict.status == "review"
    assert any(r.code == FindingCode.RULE_FAILED and r.detail for r in verdict.reasons)
    assert all(v.value == values[f] for f, v in verdict.fields.items())  # never "fixed" into consistency
    assert any(v.status == "review" and any(r.code == FindingCode.RULE_FAILED for r in v.reasons)
               for v in verdict.fields.values())


def test_soft_rule_sends_the_submission_to_review(values):
    values = dict(values)
    values["surat_rusak"] += 300  # ballots received far above DPT + reserve, sums still made to hold
    values["surat_diterima"] += 300
    verdict = read(values)
    assert verdict.status == "review"
    assert any(r.code == FindingCode.SOFT_RULE and r.detail.startswith("surat_diterima") for r in verdict.reasons)
    assert all(v.status == "ok" for v in verdict.fields.values())  # soft rules never change a read


def test_upstream_flags_and_doubts(values):
    verdict = read(values, flags={"suara_paslon_1": [FindingCode.BUBBLE_CONFLICT]},
                   doubts={"dpt_l": [FindingCode.BOX_NOT_PLACED]})
    assert verdict.fields["suara_paslon_1"].status == "review"
    assert Finding(FindingCode.BUBBLE_CONFLICT) in verdict.fields["suara_paslon_1"].reasons
    assert verdict.fields["dpt_l"].status == "ok"  # confirmed by the sums well beyond the bar
    assert Finding(FindingCode.BOX_NOT_PLACED) in verdict.fields["dpt_l"].reasons


def test_zero_written_as_fillers_only_is_flagged(values):
    values = {**values, "disabilitas_l": 0, "disabilitas_p": 0, "disabilitas_j": 0}
    verdict = read(values, {f"disabilitas_{k}": box_probs("XXX") for k in "lpj"})
    v = verdict.fields["disabilitas_j"]
    assert v.value == 0 and Finding(FindingCode.NO_DIGIT_WRITTEN) in v.reasons


@pytest.mark.parametrize("seed", range(6))
def test_every_field_not_ok_says_why(seed):
    """Random doubts and slips: whatever the status, a field that is not ok carries a reason."""
    rng = np.random.default_rng(seed)
    values = realistic_values(TEMPLATE, rng)
    if seed % 2:
        values, _ = make_inconsistent(TEMPLATE, values, rng)
    override = {}
    for field in rng.choice(sorted(values), 4, replace=False):
        written = glyph_string(values[field], len(TEMPLATE.fields[field].boxes_mm), "X")
        probs = box_probs(written)
        box = int(rng.integers(len(written)))
        probs[box] = rng.dirichlet(np.full(13, 0.3)) * 0.5
        probs[box, C["blank"] if written[box] == " " else C[written[box]]] += 0.5
        override[field] = probs
    verdict = read(values, override)
    assert all(v.reasons for v in verdict.fields.values() if v.status != "ok")


def doubtful_six_paslon() -> tuple:
    """Every box of a six-paslon form doubtful (a quarter of its mass spread over the other classes) and three fields
    written clearly wrong: (template, fields)."""
    template, rng = get_template("kwk-gubernur-6"), np.random.default_rng(1)
    values = realistic_values(template, rng)
    fields = {}
    for f, v in values.items():
        written = glyph_string(v, len(template.fields[f].boxes_mm), "X")
        probs = rng.dirichlet(np.full(13, 0.3), size=len(written)) * 0.25
        for i, ch in enumerate(written):
            probs[i, C[ch]] += 0.75
        if f in ("pengguna_dpt_l", "suara_sah", "surat_sisa"):
            probs[-1] = np.eye(13)[(C[written[-1]] + 3) % 10] * 0.9995 + 0.0005 / 13
        fields[f] = FieldRead(f, template.fields[f].page, len(probs))
        fields[f].set_probs(probs / probs.sum(1, keepdims=True))
    return template, fields


def spends(monkeypatch) -> list:
    """The moves the joint searches spend, step by step, from now on."""
    import ocr.reader.joint as joint

    spent = []
    spend = joint._Budget.spend
    monkeypatch.setattr(joint._Budget, "spend", lambda budget, moves: (spent.append(moves), spend(budget, moves)))
    return spent


def test_the_work_of_decoding_is_bounded_whatever_the_form_says(monkeypatch):
    """The doubtful six-paslon form: the searches stop at MAX_MOVES moves in all (about 2.5 us each), and the groups
    they could not decide go to a person at margin 0, never passed as ok."""
    import ocr.reader.joint as joint

    template, fields = doubtful_six_paslon()
    spent = spends(monkeypatch)
    verdict = decide(template, fields, Policy())
    assert sum(spent[:-1]) <= joint.MAX_MOVES < sum(spent)  # the search stops at the step past the budget
    undecided = [f for f, v in verdict.fields.items() if v.confidence == 0.5]  # margin 0
    assert len(undecided) > 30 and all(verdict.fields[f].status == "review" for f in undecided)
    assert verdict.status == "review"


def test_a_first_decoding_leaves_the_rest_of_the_budget_to_the_second(monkeypatch):
    """A first decoding given half the budget stops past half of it; the second decoding of the same submission
    gets what is left, and both together stay within the one budget."""
    import ocr.reader.joint as joint

    template, fields = doubtful_six_paslon()
    spent = spends(monkeypatch)
    first = decide(template, fields, Policy(), share=0.5)
    assert sum(spent[:-1]) <= joint.MAX_MOVES / 2 < sum(spent) == first.moves
    spent.clear()
    second = decide(template, fields, Policy(), spent=first.moves)
    assert sum(spent[:-1]) <= joint.MAX_MOVES - first.moves < sum(spent)  # together, one budget (and one step)
    assert second.moves == first.moves + sum(spent) and second.status == "review"


def test_a_field_no_rule_checks_is_never_ok_on_its_boxes_alone(values):
    """A learned older form checks suara_tidak_sah by no rule: however sure its boxes, a person confirms it."""
    template = TEMPLATE.model_copy(update={"rules": tuple(r for r in TEMPLATE.rules if "suara_tidak_sah" not in r.expr)})
    fields = {}
    for f in values:
        boxes = len(TEMPLATE.fields[f].boxes_mm)
        fields[f] = FieldRead(f, TEMPLATE.fields[f].page, boxes)
        fields[f].set_probs(box_probs(glyph_string(values[f], boxes, "X")))
    unchecked = decide(template, fields, Policy())
    v = unchecked.fields["suara_tidak_sah"]
    assert (v.status, v.value) == ("review", values["suara_tidak_sah"]) and Finding(FindingCode.UNCHECKED) in v.reasons
    assert unchecked.status == "review"
    named = {f for r in template.rules for f in r.parsed.field_ids(template.fields)}
    assert all((w.status == "ok") == (f in named) for f, w in unchecked.fields.items())  # suara_total's rule went too
    assert decide(TEMPLATE, fields, Policy()).fields["suara_tidak_sah"].status == "ok"  # the sums check it


def test_a_second_decoding_of_a_submission_shares_its_budget(values, monkeypatch):
    """The second look decodes the form again: with what the first decoding spent, and no more than the budget
    left. The moves of both are counted in the verdict; a submission whose budget is spent gets no new search."""
    from ocr.reader import joint

    field = "suara_paslon_1"
    written = glyph_string(values[field], 3, "X")
    probs = box_probs(written)
    probs[0, C["8" if written[0] != "8" else "6"]], probs[0, C[written[0]]] = 0.7, 0.3  # corrected by the rules
    first = read(values, {field: probs})
    assert first.fields[field].status == "corrected" and 0 < first.moves < joint.MAX_MOVES
    fields = {f: FieldRead(f, TEMPLATE.fields[f].page, len(TEMPLATE.fields[f].boxes_mm)) for f in values}
    for f, r in fields.items():
        r.set_probs(probs if f == field else box_probs(glyph_string(values[f], r.n_boxes, "X")))
    again = decide(TEMPLATE, fields, Policy(), spent=first.moves)
    assert again.fields[field].status == "corrected" and again.moves == 2 * first.moves
    spent_out = decide(TEMPLATE, fields, Policy(), spent=joint.MAX_MOVES)
    assert spent_out.fields[field].status == "review" and spent_out.status == "review"

"""Field semantics and the exactness of the joint decoder."""

import itertools
import math

import numpy as np
import pytest

from ocr.reader.digits import CLASSES
from ocr.reader.fields import field_candidates, read_string, value_probability
from ocr.reader.joint import decode_jointly
from ocr.templates.model import Rule

C = {c: i for i, c in enumerate(CLASSES)}


def classes(text: str) -> tuple[int, ...]:
    return tuple(C["blank"] if ch == " " else C[ch] for ch in text)


@pytest.mark.parametrize("written, value", [
    ("X32", 32), ("--5", 5), ("  7", 7), ("032", 32), ("184", 184), ("XX0", 0), ("000", 0),
    ("XXX", 0), ("---", 0), ("X- ", 0),  # fillers only: zero crossed out (flagged no_digit_written)
    ("   ", None),  # nothing written
    ("3X2", None), ("12 ", None), ("1-0", None),  # a filler after the first digit: malformed
])
def test_what_boxes_read_as(written, value):
    assert read_string(classes(written)) == value


def sure(text: str, p: float = 0.999) -> np.ndarray:
    probs = np.full((len(text), 13), (1 - p) / 12)
    for i, cls in enumerate(classes(text)):
        probs[i, cls] = p
    return probs


def test_candidates_sum_strings_that_read_alike_and_flag_filler_only_zero():
    probs = sure("XX0", 0.9)
    probs[0] = 0.0
    probs[0, C["X"]], probs[0, C["-"]] = 0.5, 0.5  # X or dash: the same number
    cand = field_candidates("f", probs / probs.sum(1, keepdims=True))
    assert cand.best == 0 and cand.probs[0] > 0.75
    zero = field_candidates("z", sure("XXX"))
    assert zero.best == 0 and zero.filler_only > 0.99
    empty = field_candidates("e", sure("   "))
    assert empty.empty > 0.99 and empty.residual < 0.01
    malformed = field_candidates("m", sure("3X2"))
    assert malformed.malformed > 0.99


def test_value_probability_is_exact():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(13, 0.3), size=3)
    full = _value_distribution(probs)
    for value in (0, 5, 40, 123, 7):
        assert value_probability(probs, value) == pytest.approx(full.get(value, 0.0), abs=1e-12)


def _consistent(dists: dict[str, dict], rules: list[Rule]):
    """(log p, values) of every combination of every field's numbers that holds every rule (a field always holds one;
    malformed reads are none)."""
    names = list(dists)
    for combo in itertools.product(*([(v, p) for v, p in dists[n].items() if v is not None and p > 0] for n in names)):
        values = {n: v for n, (v, _) in zip(names, combo)}
        if all(r.holds(values) for r in rules):
            yield sum(math.log(p) for _, p in combo), values


def _brute_force(dists: dict[str, dict], rules: list[Rule], all_ids: dict) -> tuple[float, dict]:
    """The best consistent combination, by enumerating them all."""
    return max(_consistent(dists, rules), key=lambda found: found[0], default=(-math.inf, None))


def _value_distribution(probs: np.ndarray) -> dict:
    dist: dict = {}
    for combo in itertools.product(range(13), repeat=len(probs)):
        p = math.prod(probs[i, c] for i, c in enumerate(combo))
        value = read_string(combo)
        dist[value] = dist.get(value, 0.0) + p
    return dist


def _noisy(rng: np.random.Generator, text: str) -> np.ndarray:
    """Peaky random box probabilities around `text`; about one box in five leans to a wrong class."""
    p = rng.dirichlet(np.full(13, 0.08), size=len(text)) * 0.3
    for i, cls in enumerate(classes(text)):
        p[i, cls] += 0.7 if rng.random() > 0.2 else 0.05
    return p / p.sum(1, keepdims=True)


def _check_exact(fields: dict[str, str], rules: list[Rule], rng: np.random.Generator) -> None:
    probs = {name: _noisy(rng, text) for name, text in fields.items()}
    cands = {name: field_candidates(name, p) for name, p in probs.items()}
    all_ids = dict.fromkeys(fields)
    result = decode_jointly(cands, rules, all_ids)
    brute_score, brute_values = _brute_force({n: _value_distribution(p) for n, p in probs.items()}, rules, all_ids)
    assert result.consistent.log_p >= brute_score - 1e-9  # never worse than the true optimum ...
    if None not in result.consistent.values.values():  # ... and when it names every value, it is the optimum
        assert result.consistent.values == brute_values
        assert result.consistent.log_p == pytest.approx(brute_score, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_search_is_exact_against_brute_force_on_a_sum(seed):
    """c = a + b over two-box fields: every value of every field enumerated by the brute force."""
    rng = np.random.default_rng(seed)
    a, b = int(rng.integers(0, 50)), int(rng.integers(0, 49))
    _check_exact({"a": f"{a:X>2}", "b": f"{b:X>2}", "c": f"{a + b:X>2}"}, [Rule(expr="c = a + b")], rng)


@pytest.mark.parametrize("seed", range(5))
def test_search_is_exact_against_brute_force_on_a_chain(seed):
    """c = a + b, e = c + d over one-box fields: the memo over partial sums must not lose the optimum."""
    rng = np.random.default_rng(100 + seed)
    a, b, d = (int(x) for x in rng.integers(0, 4, 3))
    _check_exact({"a": str(a), "b": str(b), "c": str(a + b), "d": str(d), "e": str(a + b + d)},
                 [Rule(expr="c = a + b"), Rule(expr="e = c + d")], rng)


def test_84_read_as_884_is_corrected_by_the_totals():
    """SIREKAP's published misread: the first box of a paslon read as 8; the totals say 84."""
    boxes = sure("X84")
    boxes[0, C["8"]], boxes[0, C["X"]] = 0.8, 0.2
    cands = {"suara_paslon_1": field_candidates("suara_paslon_1", boxes / boxes.sum(1, keepdims=True)),
             "suara_paslon_2": field_candidates("suara_paslon_2", sure("116")),
             "suara_sah": field_candidates("suara_sah", sure("200"))}
    rules = [Rule(expr="suara_sah = sum(suara_paslon_#)")]
    result = decode_jointly(cands, rules, dict.fromkeys(cands))
    assert result.unconstrained.values["suara_paslon_1"] == 884
    assert result.consistent.values["suara_paslon_1"] == 84
    assert result.margins["suara_paslon_1"] > 4  # the runner-up: the total is some other number


def test_runner_up_margin_is_small_when_two_readings_both_fit():
    """No rule tells 17 from 11: the margin is the field's own doubt."""
    boxes = sure("X17")
    boxes[2, C["7"]], boxes[2, C["1"]] = 0.6, 0.4
    cands = {"x": field_candidates("x", boxes / boxes.sum(1, keepdims=True))}
    result = decode_jointly(cands, [], {"x": None})
    assert result.consistent.values["x"] == 17
    assert result.margins["x"] == pytest.approx(math.log(0.6 / 0.4), abs=0.01)


def test_a_search_too_large_to_finish_decides_nothing(monkeypatch):
    """Past its budget the decoder gives up: each field keeps its own reading with margin 0 (all to a person)."""
    import ocr.reader.joint as joint

    rules = [Rule(expr="c = a + b"), Rule(expr="f = d + e"), Rule(expr="e = a")]
    probs = {"a": sure("X12"), "b": sure("X30"), "c": sure("X42"), "d": sure("XX1"), "e": sure("X12"), "f": sure("X13")}
    candidates = {f: field_candidates(f, p) for f, p in probs.items()}
    decided = decode_jointly(candidates, rules, candidates)
    assert min(decided.margins.values()) > 5
    monkeypatch.setattr(joint, "MAX_MOVES", 0)
    undecided = decode_jointly(candidates, rules, candidates)
    assert undecided.consistent.values == undecided.unconstrained.values == {"a": 12, "b": 30, "c": 42, "d": 1, "e": 12, "f": 13}
    assert set(undecided.margins.values()) == {0.0}


def _brute_margins(dists: dict[str, dict], rules: list[Rule], best: dict) -> dict[str, float]:
    """Per field: the best score minus the best score of a consistent assignment giving it another value."""
    top, runner = -math.inf, dict.fromkeys(dists, -math.inf)
    for score, values in _consistent(dists, rules):
        top = max(top, score)
        for n in dists:
            if values[n] != best[n]:
                runner[n] = max(runner[n], score)
    return {n: top - runner[n] for n in dists}


@pytest.mark.parametrize("seed", range(5))
def test_margins_never_exceed_the_true_margins(seed):
    """A margin is a bound a person relies on: never wider than the brute force's over every value of every field."""
    rng = np.random.default_rng(200 + seed)
    a, b = int(rng.integers(0, 50)), int(rng.integers(0, 49))
    probs = {name: _noisy(rng, f"{v:X>2}") for name, v in (("a", a), ("b", b), ("c", a + b))}
    cands = {name: field_candidates(name, p) for name, p in probs.items()}
    rules = [Rule(expr="c = a + b")]
    result = decode_jointly(cands, rules, dict.fromkeys(probs))
    if None in result.consistent.values.values():
        return
    true = _brute_margins({n: _value_distribution(p) for n, p in probs.items()}, rules, result.consistent.values)
    for name, margin in result.margins.items():
        assert margin <= min(true[name], 15.0) + 1e-9


def test_another_value_named_by_a_rule_is_no_free_runner_up():
    """c = a + b, e = c + d, every box sure but one of c's: d as "some other number" must move e as well; it can no
    longer leave its rule unjudged and cost only its own residual once the rule's other terms are known."""
    boxes = sure("X27")
    boxes[1, C["7"]], boxes[1, C["2"]] = 0.94, 0.05
    cands = {"a": field_candidates("a", sure("X12")), "b": field_candidates("b", sure("X15")),
             "c": field_candidates("c", boxes / boxes.sum(1, keepdims=True)),
             "d": field_candidates("d", sure("X40")), "e": field_candidates("e", sure("X67"))}
    result = decode_jointly(cands, [Rule(expr="c = a + b"), Rule(expr="e = c + d")], dict.fromkeys(cands))
    assert result.consistent.values == {"a": 12, "b": 15, "c": 27, "d": 40, "e": 67}
    own_doubt = {f: math.log(c.probs[0] / c.residual) for f, c in cands.items()}
    for f in "abd":  # each needs a second field changed with it
        assert result.margins[f] > 1.8 * own_doubt[f]


@pytest.mark.parametrize("seed", range(3))
def test_margins_are_searched_as_far_as_asked_and_exact_within(seed):
    """A margin reach of 3 nats: each margin is the full search's, cut at 3 (no decision depends on more)."""
    rng = np.random.default_rng(300 + seed)
    a, b = int(rng.integers(0, 50)), int(rng.integers(0, 49))
    cands = {name: field_candidates(name, _noisy(rng, f"{v:X>2}")) for name, v in (("a", a), ("b", b), ("c", a + b))}
    rules = [Rule(expr="c = a + b")]
    full, near = decode_jointly(cands, rules, dict.fromkeys(cands)), decode_jointly(cands, rules, dict.fromkeys(cands), 3.0)
    assert near.consistent.values == full.consistent.values
    for name, margin in full.margins.items():
        assert near.margins[name] == pytest.approx(min(margin, 3.0), abs=1e-9)


def _two_groups(d_boxes: np.ndarray) -> dict:
    """c = a + b read clearly with one doubtful box in c; f = d + e apart, d read from `d_boxes`."""
    c_boxes = sure("X27")
    c_boxes[1, C["7"]], c_boxes[1, C["2"]] = 0.94, 0.05
    return {"a": field_candidates("a", sure("X12")), "b": field_candidates("b", sure("X15")),
            "c": field_candidates("c", c_boxes / c_boxes.sum(1, keepdims=True)),
            "d": field_candidates("d", d_boxes), "e": field_candidates("e", sure("X40")),
            "f": field_candidates("f", sure("X52"))}


RULES_TWO_GROUPS = [Rule(expr="c = a + b"), Rule(expr="f = d + e")]


def test_groups_no_rule_connects_are_decoded_apart():
    """An illegible field in one group (its best is "another value") leaves the other group's margins as they are
    when that group is decoded alone: before, one "another value" anywhere loosened every margin of the form."""
    illegible = np.full((2, 13), 1 / 13)
    cands = _two_groups(illegible)
    together = decode_jointly(cands, RULES_TWO_GROUPS, dict.fromkeys(cands))
    alone = decode_jointly({f: cands[f] for f in "abc"}, RULES_TWO_GROUPS[:1], dict.fromkeys("abc"))
    assert together.consistent.values["d"] is None
    for f in "abc":
        assert together.margins[f] == pytest.approx(alone.margins[f], abs=1e-9)
        assert together.consistent.values[f] == alone.consistent.values[f]


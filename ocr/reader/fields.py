"""From box probabilities to a field's candidate numbers.

Semantics of what is written in a field's boxes (right aligned, one character per box):
- Leading X, dash or blank boxes are unused places: they read as leading zeros ("X32" = 32,
  "--5" = 5, "  7" = 7). A written leading 0 is the same ("032" = 32).
- A filler or blank *after* the first digit ("3X2", "12 ") is malformed: no number is read from
  it, and its probability counts as "something else was written".
- Boxes holding only fillers ("XXX", "---") read as 0: officers cross out every box for zero. They
  carry the reason `no_digit_written`, so that the field is confirmed by the rules or reviewed.
- All boxes blank reads as no number at all (`empty_field`): nothing was written.

Each box is independent given the photo, so the probability of a string is the product of its
boxes' class probabilities, and the probability of a value is the sum over all the strings that
read as it (computed exactly: leading fillers, then leading zeros, then the value's digits).
Candidate values come from each box's most likely classes; the mass of every number not listed
is kept as `residual`, an upper bound on the probability of any other value. Empty and malformed
readings are no number at all: the rules treat every field as holding one, so such a field can
only be given a value by the rules, at the (small) probability its boxes give that value.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from ocr.reader.digits import BLANK, CLASSES
from ocr.reader.tally import RowTally

FILLERS = frozenset({CLASSES.index("X"), CLASSES.index("-"), BLANK})
MIN_BOX_P = 1e-7  # classes below this probability in a box are not enumerated (their mass goes to residual)
MAX_PER_BOX = 5


@dataclass(frozen=True)
class FieldCandidates:
    """Values a field may hold, most probable first, with what reading it would mean."""

    field_id: str
    values: tuple[int, ...]
    probs: tuple[float, ...]  # probability of each value (summed over the strings that read as it)
    labels: tuple[tuple[str, ...], ...]  # the most probable string of boxes for each value
    residual: float  # probability of every number not listed: a bound on any other value
    empty: float  # probability that nothing at all was written (every box blank)
    malformed: float  # probability of strings that read as no number ("3X2")
    filler_only: float  # probability that the value 0 comes from fillers alone ("XXX")
    box_rows: list[list[float]] = field(compare=False, repr=False, default=None)  # (n_boxes, 13), for values not listed
    zero_readings: list[float] = field(compare=False, repr=False, default=None)  # `_prefix_readings(.., [0])`
    # An independent count of the same number weighed in (its row's tally marks): likelihood of the value k at
    # [min(k, len - 1)], the best 1; None: the boxes alone.
    count_likelihood: tuple[float, ...] | None = field(compare=False, repr=False, default=None)

    def probability(self, value: int) -> float:
        """Exact probability of any value, listed or not (times its count's likelihood where one is weighed in)."""
        if self.box_rows is None:  # decided without the boxes (a struck row): only the listed values are likely
            return dict(zip(self.values, self.probs)).get(value, self.residual)
        p = _value_probability(self.box_rows, self.zero_readings, self.empty, value)
        return p if self.count_likelihood is None else p * _likelihood(self.count_likelihood, value)

    @property
    def best(self) -> int | None:
        return self.values[0] if self.values else None


@lru_cache(maxsize=1 << 16)  # the candidates of every field ask again for the same few thousand strings
def read_string(classes: tuple[int, ...]) -> int | None:
    """The number a string of box classes reads as (see module docstring); None when malformed or empty."""
    digits = [c for c in classes if c < 10]
    if not digits:
        return None if all(c == BLANK for c in classes) else 0
    first = next(i for i, c in enumerate(classes) if c < 10)
    if any(c >= 10 for c in classes[first:]):
        return None
    return int("".join(str(c) for c in classes[first:]))


def _prefix_readings(box_probs: np.ndarray, tail_classes: list[int]) -> list[float]:
    """R[L] = P(the first L boxes are some fillers, then only `tail_classes`), for L = 0..n.

    Summed over the split point a: R[L] = sum_a F[a] * T[a:L], with F[a] the product of the first a
    boxes' filler mass; so R[L] = R[L-1] * tail[L-1] + F[L]. With `[0]` that is every reading of
    leading zeros ("XX0", "X00", "XXX", all blank); with the ten digits, every reading of a number."""
    filler = box_probs[:, sorted(FILLERS)].sum(axis=1).tolist()
    tail = box_probs[:, tail_classes].sum(axis=1).tolist()
    readings, fillers = [1.0], 1.0
    for f, t in zip(filler, tail):
        fillers *= f
        readings.append(readings[-1] * t + fillers)
    return readings


def _empty(box_probs: np.ndarray) -> float:
    return float(np.prod(box_probs[:, BLANK]))


def number_probability(box_probs: np.ndarray) -> float:
    """Probability that the boxes read as some number: fillers, then digits (not every box blank)."""
    return _prefix_readings(box_probs, list(range(10)))[-1] - _empty(box_probs)


def _value_probability(box_rows: list[list[float]], zeros: list[float], empty: float, value: int) -> float:
    """`value_probability` on precomputed rows and leading-zero readings (`_prefix_readings(.., [0])`)."""
    if value == 0:
        return zeros[-1] - empty
    digits = str(value)
    lead = len(box_rows) - len(digits)
    if lead < 0:
        return 0.0
    p = zeros[lead]  # no leading box: the empty prefix reads as nothing, probability 1
    for row, d in zip(box_rows[lead:], digits):
        p *= row[int(d)]
    return p


def value_probability(box_probs: np.ndarray, value: int) -> float:
    """Exact probability that the boxes read as `value` (an all-blank field reads as nothing)."""
    return _value_probability(box_probs.tolist(), _prefix_readings(box_probs, [0]), _empty(box_probs), value)


def field_candidates(field_id: str, box_probs: np.ndarray) -> FieldCandidates:
    """Candidates of one field from its boxes' (n_boxes, 13) probabilities."""
    rows = box_probs.tolist()  # plain floats: a field's few boxes cost less in Python than in NumPy calls
    box_classes, box_probs_kept = [], []
    for probs in rows:
        order = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)[:MAX_PER_BOX]
        kept = [c for c in order if probs[c] >= MIN_BOX_P]  # the top class is >= 1/13
        box_classes.append(kept)
        box_probs_kept.append([probs[c] for c in kept])
    best_string: dict[int, tuple[float, tuple[int, ...]]] = {}
    for classes, qs in zip(itertools.product(*box_classes), itertools.product(*box_probs_kept)):
        value = read_string(classes)
        if value is None:
            continue
        p = math.prod(qs)
        if p > best_string.get(value, (-1.0, ()))[0]:
            best_string[value] = (p, classes)
    empty = _empty(box_probs)
    zeros = _prefix_readings(box_probs, [0])
    exact = {v: _value_probability(rows, zeros, empty, v) for v in best_string}
    ranked = sorted(exact, key=lambda v: -exact[v])
    numbers = number_probability(box_probs)
    return FieldCandidates(
        field_id=field_id, values=tuple(ranked), probs=tuple(exact[v] for v in ranked),
        labels=tuple(tuple(CLASSES[c] for c in best_string[v][1]) for v in ranked),
        residual=max(0.0, numbers - sum(exact.values())), empty=empty, malformed=max(0.0, 1.0 - numbers - empty),
        filler_only=float(np.prod(box_probs[:, sorted(FILLERS)].sum(axis=1))) - empty, box_rows=rows, zero_readings=zeros)


def _likelihood(count_likelihood: tuple[float, ...], value: int) -> float:
    return count_likelihood[min(value, len(count_likelihood) - 1)]


def _best_string(box_rows: list[list[float]], value: int) -> tuple[str, ...]:
    """The most probable boxes reading as `value` (> 0, fitting the boxes): best filler or 0 first, then its digits."""
    digits = str(value)
    lead = box_rows[: len(box_rows) - len(digits)]
    return (*(CLASSES[max(sorted(FILLERS | {0}), key=row.__getitem__)] for row in lead), *digits)


def with_count(c: FieldCandidates, count_likelihood: tuple[float, ...]) -> FieldCandidates:
    """`c` weighed by an independent count of the same number: each value's probability times its likelihood, the
    count's likely values listed too. The residual stays a bound: any unlisted value's likelihood is at most the
    largest one among the values left unlisted (values past the end share the last)."""
    n = len(count_likelihood)
    floor = min(count_likelihood)
    extra = [k for k in range(n) if count_likelihood[k] > floor and k not in c.values
             and len(str(k)) <= len(c.box_rows)]
    values = (*c.values, *extra)
    probs = [c.probability(v) * _likelihood(count_likelihood, v) for v in c.values]
    probs += [_value_probability(c.box_rows, c.zero_readings, c.empty, k) * count_likelihood[k] for k in extra]
    labels = (*c.labels, *(_best_string(c.box_rows, k) for k in extra))
    order = sorted(range(len(values)), key=lambda i: -probs[i])
    unlisted = max([count_likelihood[-1]] + [count_likelihood[k] for k in range(n) if k not in values])
    return replace(c, values=tuple(values[i] for i in order), probs=tuple(probs[i] for i in order),
                   labels=tuple(labels[i] for i in order), residual=c.residual * unlisted,
                   count_likelihood=count_likelihood)


def unused(c: FieldCandidates, residual: float) -> FieldCandidates:
    """A field the form itself marks unused (its tally row struck out): 0, whatever its boxes show; any other value
    only at `residual`."""
    return FieldCandidates(c.field_id, (0,), (1.0 - residual,), (("-",) * len(c.box_rows),),
                           residual=residual, empty=0.0, malformed=0.0, filler_only=0.0)


@dataclass
class FieldRead:
    """Everything the reader knows of one field, from its boxes to its verdict: the one object per field that the
    stages fill in turn (cut: boxes and findings; classify: probs and candidates; judge: verdict)."""

    field_id: str
    page: int
    n_boxes: int = 0
    bubbles: np.ndarray | None = None  # (n_boxes, 13) likelihoods from the OMR bubbles under the boxes
    probs: np.ndarray | None = None  # (n_boxes, 13) box class probabilities, bubbles fused
    candidates: FieldCandidates | None = None
    flags: list = field(default_factory=list)  # findings (FindingCode) that send the field to a person
    doubts: list = field(default_factory=list)  # findings that let it pass only with a correction's margin
    tally: RowTally | None = None  # a row sum's tally marks, weighed in by the verdict where its policy says so
    verdict: object = None  # its FieldVerdict, once judged

    def set_probs(self, probs: np.ndarray) -> None:
        """The classifier's (n_boxes, 13) probabilities, fused with the bubbles where there are any; candidates."""
        if self.bubbles is not None:
            probs = probs * self.bubbles
            probs = probs / probs.sum(axis=1, keepdims=True)
        self.probs, self.candidates = probs, field_candidates(self.field_id, probs)

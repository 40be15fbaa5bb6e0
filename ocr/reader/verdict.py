"""Statuses and reasons: what the joint decoding may emit on its own and what a person must see.

Per field: `ok` (read as written, the runner-up far behind), `corrected` (the rules changed the
read; both values kept), `review`, `unreadable`. Per submission: `ok` when every field is ok or
corrected and no soft rule fails, else `review`; refused photos make it `rejected` (ocr/pipeline.py).
A form that breaks a hard rule as written, with strong evidence for the written digits (fixing
it would cost more than `max_fix_nats` in all, or one field more than `max_fix_field_nats`, or than
`max_fix_slip_nats` where the change is the size of an arithmetic slip), is
reported as written and sent to review: never "fixed" into a false consistency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ocr.reader.fields import FieldCandidates, FieldRead, unused, with_count
from ocr.reader.joint import MAX_MOVES, JointResult, decode_jointly
from ocr.reader.reasons import Finding, FindingCode
from ocr.templates.model import FormTemplate


@dataclass(frozen=True)
class Policy:
    """Thresholds in nats of log probability, chosen on bench/strangers_bench.py's curve for the classifier trained
    on writer-disjoint splits (its probabilities stop short of 1): at ok 3 / corrected 5, with rule-named "another
    value" (ocr/reader/joint.py), a doubtful read needing a correction's margin and slip-sized changes limited, 0
    silently wrong of 36,066 fields over 500 submissions by held-out writers and 200 by MNIST's test writers, and 0
    of 51,290 over 1,000 by our own writers. README gives the whole curve."""

    ok_margin: float = 3.0  # a read confirmed by this margin over its runner-up is emitted as `ok`
    corrected_margin: float = 5.0  # a rule-made change needs more
    max_fix_nats: float = 9.0  # above this, the rules would overrule strong evidence: inconsistent as written
    # ... and so does one field whose own reading the rules would overrule by more than this: a KPPS slip written
    # clearly (on 1,000 phone submissions, the slips overruled cost 5.9-8.5 nats; 13 of 294 right corrections more)
    max_fix_field_nats: float = 5.5
    # ... or by more than this when the change is the size of a slip (off by 1-3, by 10 or 100: miscounted, a carry
    # forgotten): there a slip is about as likely as a misread, so only a doubtful box may be overruled
    max_fix_slip_nats: float = 2.5
    use_rules: bool = True
    use_tally: bool = True  # weigh each row sum's tally marks in (ocr/reader/tally.py)
    tally_floor: float = 1e-3  # likelihood kept by a value the marks rule out: a miscount the cells did not foresee
    tally_sure: float = 0.99  # a count this probable that disagrees with confidently written digits is a conflict
    # Every box's residual (at least this) shared out by the confusions measured on unseen writers (digits.py
    # floored); None: the classifier's probabilities as they are (the default: on 700 submissions a floor of 1e-4
    # to 3e-3 changed no silent error and sent 0.2-1.5 % more of them to review).
    floor_residual: float | None = None

    @property
    def margin_reach(self) -> float:
        """How far below the best the runner-ups are searched: no status depends on a margin beyond the larger
        threshold, so a margin past it is reported as it (and its confidence as at least that)."""
        return max(self.ok_margin, self.corrected_margin)


@dataclass
class FieldVerdict:
    value: int | None
    confidence: float  # P(value) against its runner-up: 1 / (1 + exp(-margin))
    status: str
    reasons: list[Finding] = field(default_factory=list)
    read_value: int | None = None  # the field's own most probable value, before the rules
    candidates: FieldCandidates | None = None  # what was judged: the boxes' candidates, tally marks weighed in


@dataclass(frozen=True)
class Verdict:
    fields: dict[str, FieldVerdict]
    status: str  # ok | review
    reasons: tuple[Finding, ...]
    checks: tuple[tuple[str, bool, bool], ...]  # (rule, holds, hard) over the emitted values
    moves: float = 0.0  # what the joint decoding spent of a submission's budget (joint.MAX_MOVES)


def _confidence(margin: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(margin, 50.0)))


@dataclass(frozen=True)
class Weighed:
    """A field's candidates with its tally marks weighed in, and what the marks say about it."""

    candidates: FieldCandidates
    flags: tuple[Finding, ...] = ()  # send the field to a person (tally_conflict)
    notes: tuple[Finding, ...] = ()  # explain the value (row_struck)


def _own_margin(c: FieldCandidates) -> float:
    """Nats by which the field's own reading (boxes, tally) prefers its best value to any other, rules aside."""
    if not c.values:
        return 0.0
    return math.log(c.probs[0] / max(c.probs[1] if len(c.probs) > 1 else 0.0, c.residual, 1e-300))


STRUCK_RESIDUAL = 1e-6  # any other value than 0 for a struck row: the rules may not make one cheaply


def weigh(read: FieldRead, policy: Policy) -> Weighed:
    """The tally channel: a struck row reads 0; counted marks multiply each value's probability by its likelihood;
    a sure count against confidently written digits is a conflict, and the digits stay as written for the person."""
    c, tally = read.candidates, read.tally
    if tally is None or not policy.use_tally or tally.status == "none":
        return Weighed(c)
    if tally.status == "struck":
        seen = "a strike line through its sum boxes" if tally.sum_struck else "its tally cells struck out"
        return Weighed(unused(c, STRUCK_RESIDUAL), notes=(Finding(FindingCode.ROW_STRUCK, f"{read.field_id}: {seen}"),))
    if tally.sum_struck:  # the boxes struck as unused, yet marks counted: both cannot be right
        detail = f"{read.field_id} tally {tally.count} vs a strike line through its sum boxes"
        return Weighed(c, flags=(Finding(FindingCode.TALLY_CONFLICT, detail),))
    if c.values:
        confident = _own_margin(c) >= policy.ok_margin
        if confident and tally.p >= policy.tally_sure and not tally.agrees(c.values[0]):
            detail = f"{read.field_id} tally {tally.count} vs written {c.values[0]}"
            return Weighed(c, flags=(Finding(FindingCode.TALLY_CONFLICT, detail),))
    return Weighed(with_count(c, tally.count_likelihood(policy.tally_floor)))


def decode(template: FormTemplate, fields: dict[str, FieldRead], policy: Policy, bounded: bool = True,
           spent: float = 0.0, share: float = 1.0) -> tuple[dict[str, Weighed], JointResult]:
    """Each field weighed, and the joint decoding of the weighed candidates under the template's hard rules (unless
    the policy drops them): what does not depend on the margins, so a benchmark judges many margins on one decoding.
    `bounded=False` lifts the search's budget of rule states (what bench/joint_bounds.py measures the bound by);
    `spent`: what an earlier decoding of the same submission used of it; `share`: of what is left, the most this
    decoding may use."""
    weighed = {f: weigh(r, policy) for f, r in fields.items()}
    rules = list(template.rules) if policy.use_rules else []
    candidates = {f: w.candidates for f, w in weighed.items()}
    return weighed, decode_jointly(candidates, rules, template.fields, policy.margin_reach,
                                   share * max(MAX_MOVES - spent, 0.0) if bounded else math.inf)


def decide(template: FormTemplate, fields: dict[str, FieldRead], policy: Policy, spent: float = 0.0,
           share: float = 1.0) -> Verdict:
    """Decoding, then the verdict; each FieldRead gets its FieldVerdict. `spent`: moves an earlier decoding of the
    same submission made (the verdict's `moves` counts them too: one budget a submission); `share`: of the moves
    left, the most this decoding may make (a first decoding leaves the rest to the second look's)."""
    weighed, joint = decode(template, fields, policy, spent=spent, share=share)
    verdict = judge(template, fields, joint, policy, weighed)
    return replace(verdict, moves=spent + joint.moves)


def _field_verdict(read: FieldRead, weighed: Weighed, margin: float, consistent: int | None, written: int | None,
                   inconsistent: bool, failed: list[Finding], policy: Policy, checked: bool) -> FieldVerdict:
    """One field's status and reasons (see the module docstring); `checked`: some hard rule of the form names it."""
    cand = weighed.candidates
    value = written if inconsistent else consistent
    # A read its own boxes doubt, that only the rules confirm, needs a correction's margin: one writer's misreads
    # agree with each other (a 4 read as 6 in L and in J keeps L + P = J), and the rules cannot tell.
    confirmed_only = value == written and _own_margin(cand) < policy.ok_margin
    needed = policy.corrected_margin if confirmed_only else policy.ok_margin
    verdict = FieldVerdict(value, _confidence(margin), "ok", [*weighed.notes], written, cand)
    if cand.empty > 0.5 or (value is None and written is None):
        verdict.value, verdict.status = None, "unreadable"
        verdict.reasons.append(Finding(FindingCode.EMPTY_FIELD if cand.empty > 0.5 else FindingCode.UNREADABLE))
    elif value is None:  # the rules cannot hold with any listed value of this field: report the read, for a person
        verdict.value, verdict.status = written, "review"
        verdict.reasons += failed or [Finding(FindingCode.UNREADABLE)]
    elif inconsistent:
        verdict.status = "review" if failed or margin < needed else "ok"
        verdict.reasons += failed
    elif value != written:
        verdict.status = "corrected" if margin >= policy.corrected_margin else "review"
        verdict.reasons.append(Finding(FindingCode.CORRECTED_BY_RULES, f"read {written}"))
    elif margin < needed:
        verdict.status = "review"
    if verdict.status == "review":  # every review says why
        verdict.reasons += [r for r in failed if r not in verdict.reasons]
        if margin < needed:
            verdict.reasons.append(Finding(FindingCode.LOW_MARGIN, f"{margin:.1f}"))
    if value == 0 and cand.filler_only > 0.5 * (cand.probs[0] if cand.probs else 1.0):
        verdict.reasons.append(Finding(FindingCode.NO_DIGIT_WRITTEN))
    # A number no rule of its form checks is never emitted on its boxes alone: a stranger's 2 read as 5 beyond any
    # margin happens (a learned template's 129 read 159 at over 5 nats; a 2014 scan's slashed 0 read 8 at p 0.95).
    if not checked and verdict.status == "ok":
        verdict.status = "review"
        verdict.reasons.append(Finding(FindingCode.UNCHECKED))
    if read.doubts:
        verdict.reasons += [Finding(code) for code in read.doubts]
        if verdict.status == "ok" and margin < policy.corrected_margin:
            verdict.status = "review"
    for flag in [*map(Finding, read.flags), *weighed.flags]:
        verdict.reasons.append(flag)
        if verdict.status in ("ok", "corrected"):
            verdict.status = "review"
    return verdict


def _fix_cost(candidates: FieldCandidates, written: int, consistent: int) -> float:
    """Nats by which a field's own reading prefers what is written over what the rules want."""
    return math.log(max(candidates.probability(written), 1e-300)) - math.log(max(candidates.probability(consistent),
                                                                                 1e-300))


SLIP_SIZES = frozenset({1, 2, 3, 10, 100})  # how far an officer's arithmetic slip puts a number off


def _clear_slip(candidates: FieldCandidates, written: int, consistent: int, policy: Policy) -> bool:
    """Whether the rules would overrule what this field's boxes clearly say: then the form is inconsistent as
    written, for a person; a change the size of a slip may overrule only a doubtful reading."""
    limit = policy.max_fix_slip_nats if abs(written - consistent) in SLIP_SIZES else policy.max_fix_field_nats
    return _fix_cost(candidates, written, consistent) > limit


def judge(template: FormTemplate, fields: dict[str, FieldRead], joint: JointResult, policy: Policy,
          weighed: dict[str, Weighed]) -> Verdict:
    """Field statuses and the submission's, from the joint result over the `weighed` candidates; each FieldRead gets
    its verdict. Upstream findings per field: `flags` send it to review (`bubble_conflict`); `doubts`
    (`box_not_placed`) let it pass only with the margin a correction needs."""
    consistent, written = joint.consistent.values, joint.unconstrained.values
    clear_slip = any(_clear_slip(weighed[f].candidates, written[f], consistent[f], policy)
                     for f in fields if written[f] is not None and consistent[f] not in (None, written[f]))
    inconsistent = policy.use_rules and (joint.unconstrained.log_p - joint.consistent.log_p > policy.max_fix_nats
                                         or clear_slip)
    known_written = {f: v for f, v in written.items() if v is not None}
    broken = {r.expr: r.parsed.field_ids(template.fields) for r in template.failed_rules(known_written, hard_only=True)}
    checked = {f for r in template.rules if r.hard for f in r.parsed.field_ids(template.fields)}
    verdicts: dict[str, FieldVerdict] = {}
    for field_id, read in fields.items():
        failed = [Finding(FindingCode.RULE_FAILED, expr) for expr, ids in broken.items() if field_id in ids]
        read.verdict = verdicts[field_id] = _field_verdict(read, weighed[field_id], joint.margins.get(field_id, 0.0),
                                                           consistent[field_id], written[field_id], inconsistent,
                                                           failed, policy, field_id in checked)
    # Rules broken as written are the submission's reasons unless a confident correction settled them.
    unsettled = inconsistent or any(v.status != "corrected" for v in verdicts.values() if v.value != v.read_value
                                    or any(r.code == FindingCode.RULE_FAILED for r in v.reasons))
    reasons = [Finding(FindingCode.RULE_FAILED, expr) for expr in broken] if broken and unsettled else []
    checks = _checks(template, verdicts, policy, reasons)
    status = "review" if reasons or any(v.status not in ("ok", "corrected") for v in verdicts.values()) else "ok"
    return Verdict(verdicts, status, tuple(reasons), tuple(checks), joint.moves)


def _checks(template: FormTemplate, verdicts: dict[str, FieldVerdict], policy: Policy,
            reasons: list[Finding]) -> list[tuple[str, bool, bool]]:
    """(rule, holds, hard) of every rule over the emitted values; a soft rule that fails is a reason, for the
    submission and each of its fields."""
    emitted = {f: v.value for f, v in verdicts.items() if v.value is not None}
    checks = []
    for rule in template.rules:
        ids = rule.parsed.field_ids(template.fields)
        if not ids <= emitted.keys():
            continue
        holds = rule.holds(emitted)
        checks.append((rule.expr, holds, rule.hard))
        if not holds and not rule.hard and policy.use_rules:
            reasons.append(Finding(FindingCode.SOFT_RULE, rule.expr))
            for f in ids:
                verdicts[f].reasons.append(Finding(FindingCode.SOFT_RULE, rule.expr))
    return checks

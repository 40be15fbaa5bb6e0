"""Statuses and reasons: what the joint decoding may emit on its own and what a person must see.

Per field: `ok` (read as written, the runner-up far behind), `corrected` (the rules changed the
read; both values kept), `review`, `unreadable`. Per submission: `ok` when every field is ok or
corrected and no soft rule fails, else `review`; refused photos make it `rejected` (ocr/pipeline.py).
A form that breaks a hard rule as written, with strong evidence for the written digits (fixing
it would cost more than `max_fix_nats`), is reported as written and sent to review: never
"fixed" into a false consistency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ocr.reader.fields import FieldCandidates
from ocr.reader.joint import JointResult
from ocr.templates.model import FormTemplate


@dataclass(frozen=True)
class Policy:
    """Thresholds in nats of log probability, chosen on bench/decode_bench.py's 1,000 phone submissions (seed
    2024): at ok 4 / corrected 6, 0 of 51,398 fields silently wrong (95 % bound 5.8e-5 < the 1e-4 goal) with
    31 % of submissions to review (7 / 9: 56 %); on the unseen 1,000 of bench/batch_bench.py (seed 7, 12 MP):
    0 of 51,792 fields silently wrong, 21.6 % to review."""

    ok_margin: float = 4.0  # a read confirmed by this margin over its runner-up is emitted as `ok`
    corrected_margin: float = 6.0  # a rule-made change needs more
    max_fix_nats: float = 9.0  # above this, the rules would overrule strong evidence: inconsistent as written
    use_rules: bool = True


@dataclass
class FieldVerdict:
    value: int | None
    confidence: float  # P(value) against its runner-up: 1 / (1 + exp(-margin))
    status: str
    reasons: list[str] = field(default_factory=list)
    read_value: int | None = None  # the field's own most probable value, before the rules


@dataclass(frozen=True)
class Verdict:
    fields: dict[str, FieldVerdict]
    status: str  # ok | review
    reasons: tuple[str, ...]
    checks: tuple[tuple[str, bool, bool], ...]  # (rule, holds, hard) over the emitted values


def _confidence(margin: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(margin, 50.0)))


def judge(template: FormTemplate, candidates: dict[str, FieldCandidates], joint: JointResult, policy: Policy,
          flags: dict[str, list[str]] | None = None, doubts: dict[str, list[str]] | None = None) -> Verdict:
    """Field statuses and the submission's, from the joint result. Upstream findings per field:
    `flags` send it to review (`bubble_conflict`); `doubts` (`box_not_placed`) let it pass only
    with the margin a correction needs."""
    flags, doubts = flags or {}, doubts or {}
    consistent, written = joint.consistent.values, joint.unconstrained.values
    fix_cost = joint.unconstrained.log_p - joint.consistent.log_p
    inconsistent = policy.use_rules and fix_cost > policy.max_fix_nats
    known_written = {f: v for f, v in written.items() if v is not None}
    broken = {r.expr: r.parsed.field_ids(template.fields) for r in template.failed_rules(known_written, hard_only=True)}
    fields: dict[str, FieldVerdict] = {}
    for field_id, cand in candidates.items():
        margin = joint.margins.get(field_id, 0.0)
        failed = [f"rule_failed: {expr}" for expr, ids in broken.items() if field_id in ids]
        value = written[field_id] if inconsistent else consistent[field_id]
        verdict = FieldVerdict(value, _confidence(margin), "ok", [], written[field_id])
        if cand.empty > 0.5 or (value is None and written[field_id] is None):
            verdict.value, verdict.status = None, "unreadable"
            verdict.reasons.append("empty_field" if cand.empty > 0.5 else "unreadable")
        elif value is None:  # the rules cannot hold with any listed value of this field: report the read, for a person
            verdict.value, verdict.status = written[field_id], "review"
            verdict.reasons += failed or ["unreadable"]
        elif inconsistent:
            verdict.status = "review" if failed or margin < policy.ok_margin else "ok"
            verdict.reasons += failed
        elif value != written[field_id]:
            verdict.status = "corrected" if margin >= policy.corrected_margin else "review"
            verdict.reasons.append(f"corrected_by_rules: read {written[field_id]}")
        elif margin < policy.ok_margin:
            verdict.status = "review"
        if verdict.status == "review":  # every review says why
            verdict.reasons += [r for r in failed if r not in verdict.reasons]
            if margin < policy.ok_margin:
                verdict.reasons.append(f"low_margin: {margin:.1f}")
        if value == 0 and cand.filler_only > 0.5 * (cand.probs[0] if cand.probs else 1.0):
            verdict.reasons.append("no_digit_written")
        if doubts.get(field_id):
            verdict.reasons += doubts[field_id]
            if verdict.status == "ok" and margin < policy.corrected_margin:
                verdict.status = "review"
        for flag in flags.get(field_id, []):
            verdict.reasons.append(flag)
            if verdict.status in ("ok", "corrected"):
                verdict.status = "review"
        fields[field_id] = verdict
    emitted = {f: v.value for f, v in fields.items() if v.value is not None}
    checks = []
    # Rules broken as written are the submission's reasons unless a confident correction settled them.
    unsettled = inconsistent or any(v.status != "corrected" for v in fields.values() if v.value != v.read_value
                                    or any(r.startswith("rule_failed") for r in v.reasons))
    reasons = [f"rule_failed: {expr}" for expr in broken] if broken and unsettled else []
    for rule in template.rules:
        ids = rule.parsed.field_ids(template.fields)
        if not ids <= emitted.keys():
            continue
        holds = rule.holds(emitted)
        checks.append((rule.expr, holds, rule.hard))
        if not holds and not rule.hard and policy.use_rules:
            reasons.append(f"soft_rule: {rule.expr}")
            for f in ids:
                fields[f].reasons.append(f"soft_rule: {rule.expr}")
    status = "review" if reasons or any(v.status not in ("ok", "corrected") for v in fields.values()) else "ok"
    return Verdict(fields, status, tuple(reasons), tuple(checks))

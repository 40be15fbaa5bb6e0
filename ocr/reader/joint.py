"""Joint decoding: the most probable values of all fields of a submission that satisfy every hard rule.

Each field offers its candidate values (ocr/reader/fields.py) and one more option, "another value",
whose probability is the field's residual mass: the most any value not listed can have. The
search maximises the sum of log probabilities over fields, subject to the hard rules. A field
that closes a rule takes the value the rule names, scored exactly whether listed or not; a free
field set to "another value" leaves its rules unjudged. So the result is exact: any assignment
using an unlisted free value scores at most what the same assignment with "another value"
scores, and that one was searched.

The margins (max-marginals) are searched tighter: there a rule whose terms are all known but one
"another value" names that value, scored exactly (a value that is listed is no "another value":
that assignment is the listed option's), so a field that rules confirm cannot win its margin back
by becoming "some other number" that no rule would let it be. The best assignment is the same
under both scorings whenever it names every field (only "another value" scores differ), and the
looser one finds it faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from ocr.reader.fields import FieldCandidates
from ocr.templates.model import Rule

OTHER = None  # the "another value" option
UNJUDGED = (0.0, (-1, -1))  # an open rule with two or more "another value" terms: holds whatever the rest (a bound)
LOG_FLOOR = -50.0  # log probability given to an option of probability 0
MARGIN_CAP = 15.0  # runner-ups are searched this many nats below the best by default: beyond, as good as impossible
BEST_REACH = (8.0, 16.0, 32.0, math.inf)  # nats below the fields' own tops the best is first searched, then wider
# Moves (a rule state expanded, or one option tried from it) a submission's searches may make in all, about 2.5 us
# each on one core: the bound on its decoding time whatever the form says. Of 1,700 read submissions, 10 needed more
# (up to 245,000); the median needed 450.
MAX_MOVES = 30_000


def _log(p: float) -> float:
    return math.log(p) if p > 0 else LOG_FLOOR


class _Undecided(Exception):
    """The rules tie too many doubtful fields together to search them in time."""


class _Budget:
    """What is left of the moves (a state expanded, each option tried from it) a submission's searches may make."""

    def __init__(self, moves: float) -> None:
        self.left, self.spent = moves, 0

    def spend(self, moves: int) -> None:
        self.left -= moves
        self.spent += moves
        if self.left < 0:
            raise _Undecided


@dataclass(frozen=True)
class Assignment:
    values: dict[str, int | None]  # None: "another value" (unreadable as any listed value)
    log_p: float


@dataclass(frozen=True)
class _Equation:
    """A hard rule compiled to sum(coef * field) + const = 0 (within tolerance), closed by its last field."""

    rule: Rule
    terms: tuple[tuple[int, float], ...]  # (position in the search order, coefficient), last one closing
    const: float
    coefs: dict[int, float]  # the same terms by position


def _order(fields: list[str], groups: list[set[str]]) -> list[str]:
    """Greedy: next the field that leaves the fewest rules open, then the one closing the most."""
    order: list[str] = []
    placed: set[str] = set()
    remaining = set(fields)
    while remaining:
        def cost(f: str) -> tuple:
            after = placed | {f}
            still_open = sum(1 for g in groups if g & after and not g <= after)
            closes = sum(1 for g in groups if f in g and g <= after)
            return (still_open, -closes, f)
        pick = min(remaining, key=cost)
        order.append(pick)
        placed.add(pick)
        remaining.discard(pick)
    return order


@dataclass(frozen=True)
class _Plan:
    """What the search needs from the field ids and the rules alone: compiled once per template, not per photo."""

    order: tuple[str, ...]  # the fields in search order
    equations: tuple[_Equation, ...]
    terms_at: tuple[tuple[tuple[int, float], ...], ...]  # per position: (equation, coefficient) of its terms
    closing: tuple[tuple[int, ...], ...]  # per position: the equations its field closes
    open_at: tuple[tuple[int, ...], ...]  # per depth: the equations with terms on both sides of it


@lru_cache(maxsize=256)
def _plan(fields: tuple[str, ...], rules: tuple[Rule, ...], known: tuple[str, ...]) -> _Plan:
    linear = [(r, r.parsed.linear(list(known))) for r in rules]
    unsupported = [r.expr for r, lin in linear if lin is None or r.parsed.cmp != "="]
    if unsupported:
        raise ValueError(f"hard rules must be linear equalities for joint decoding: {unsupported}")
    usable = [(r, lin) for r, lin in linear if lin[0] and lin[0].keys() <= set(fields)]
    order = _order(list(fields), [set(lin[0]) for _, lin in usable])
    position = {f: i for i, f in enumerate(order)}
    equations: list[_Equation] = []
    terms_at: list[list[tuple[int, float]]] = [[] for _ in order]
    closing: list[list[int]] = [[] for _ in range(len(order) + 1)]
    for rule, (coefs, const) in usable:
        terms = tuple(sorted(((position[f], c) for f, c in coefs.items()), key=lambda t: t[0]))
        e = len(equations)
        equations.append(_Equation(rule, terms, const, dict(terms)))
        closing[terms[-1][0]].append(e)
        for pos, coef in terms:
            terms_at[pos].append((e, coef))
    open_at = tuple(tuple(e for e, eq in enumerate(equations) if eq.terms[0][0] < d <= eq.terms[-1][0])
                    for d in range(len(order) + 1))
    return _Plan(tuple(order), tuple(equations), tuple(map(tuple, terms_at)), tuple(map(tuple, closing)), open_at)


class _Search:
    """Exact dynamic programme over the fields in a fixed order. The state after the first d fields
    is, for every rule still open, the partial sum of its known terms and which of its fields are
    "another value": what the remaining fields need to know, so equal states are solved once."""

    def __init__(self, plan: _Plan, candidates: dict[str, FieldCandidates], budget: _Budget, named: bool):
        self.budget = budget
        self.named = named  # whether a rule with one "another value" left names it (else: unjudged, looser, faster)
        self.order, self.equations = plan.order, plan.equations
        self.terms_at, self.closing, self.open_at = plan.terms_at, plan.closing, plan.open_at
        self.candidates = [candidates[f] for f in self.order]
        self.options = [self._options(candidates[f]) for f in self.order]
        self.log_p = [dict(opts) for opts in self.options]
        best = [opts[0][1] for opts in self.options]
        self.rest = [sum(best[d:]) for d in range(len(best) + 1)]  # the most fields d.. can score

    @staticmethod
    def _options(c: FieldCandidates) -> list[tuple[int | None, float]]:
        options = [(v, _log(p)) for v, p in zip(c.values, c.probs)]
        if c.residual > 0 or not options:
            options.append((OTHER, _log(c.residual)))
        return sorted(options, key=lambda o: -o[1])

    def run(self, floor: float = -math.inf) -> Assignment | None:
        """The best assignment if it scores above `floor` (with none, one always exists: "another value" everywhere
        leaves every rule unjudged)."""
        self.memo: dict[tuple, tuple[bool, float, tuple]] = {}
        found = self._complete(0, (), floor)
        return found and Assignment(dict(zip(self.order, found[1])), found[0])

    def _required(self, depth: int, closing: list[tuple[float, tuple]]) -> tuple[bool, int | None]:
        """(constrained, value) for the field at `depth` from the rules it closes, given their (partial sum,
        unknown positions) in `self.closing[depth]` order; value None: no value fits."""
        need = None
        constrained = False
        for e, (partial, unknowns) in zip(self.closing[depth], closing):
            if unknowns:
                continue  # named once this field is chosen, if only one is unknown (`_resolve`)
            value = self._named(e, partial, self.equations[e].terms[-1][1])
            if value is None or (constrained and need != value):
                return True, None
            constrained, need = True, value
        return constrained, need

    def _named(self, e: int, partial: float, coef: float) -> int | None:
        """The value a term with coefficient `coef` must take for equation `e` to hold, if a count can."""
        x = -partial / coef
        value = round(x)
        if abs(x - value) * abs(coef) > self.equations[e].rule.tolerance + 1e-9 or value < 0:
            return None
        return value

    def _choices(self, depth: int, closing: list[tuple[float, tuple]]) -> list[tuple[int | None, float]]:
        """The options of the field at `depth` given the state of the rules it closes."""
        constrained, need = self._required(depth, closing)
        if not constrained:
            return self.options[depth]
        if need is None:
            return []
        # The rules name the value: score it exactly, listed or not (a rule is never satisfied for free).
        logp = self.log_p[depth].get(need)
        return [(need, logp if logp is not None else _log(self.candidates[depth].probability(need)))]

    def _resolve(self, depth: int, eqs: dict[int, tuple[float, tuple]], logp: float) -> float | None:
        """A rule closing at `depth` with one "another value" left names that value: scored exactly instead of the
        residual bound and put into the field's other rules; None when no count fits or the value named is listed
        (that assignment is the listed option's, searched there). Mutates `eqs`; returns the step's log p."""
        queue = [e for e in self.closing[depth] if len(eqs[e][1]) == 1]
        while queue:
            e = queue.pop()
            partial, unknowns = eqs[e]
            if not unknowns:  # all known after a substitution: it must hold
                if abs(partial) > self.equations[e].rule.tolerance + 1e-9:
                    return None
                continue
            if len(unknowns) > 1:
                continue
            u = unknowns[0]
            value = self._named(e, partial, self.equations[e].coefs[u])
            if value is None or value in self.log_p[u]:
                return None
            logp += _log(self.candidates[u].probability(value)) - self.log_p[u][OTHER]
            for f, (p, unk) in eqs.items():
                if u in unk:
                    eqs[f] = (p + self.equations[f].coefs[u] * value, tuple(x for x in unk if x != u))
                    if f != e and len(eqs[f][1]) <= 1 and f in self.closing[depth]:
                        queue.append(f)
        return logp

    def _expand(self, depth: int, state: tuple) -> list[tuple[int | None, float, tuple]]:
        """(value, log p, next state) for each option of the field at `depth` from `state`: per open rule (in
        `open_at[depth]` order), its partial sum and the positions of its "another value" terms."""
        here = dict(zip(self.open_at[depth], state))
        closing = [here.get(e) or (self.equations[e].const, ()) for e in self.closing[depth]]  # not open: 1-term rule
        choices = self._choices(depth, closing)
        self.budget.spend(1 + len(choices))
        moves = []
        for value, logp in choices:
            eqs = dict(here)
            for e, coef in self.terms_at[depth]:
                partial, unknowns = eqs.get(e) or (self.equations[e].const, ())
                if unknowns == UNJUDGED[1]:
                    continue
                if value is not OTHER:
                    eqs[e] = (partial + coef * value, unknowns)
                elif unknowns or not self.named:  # states that differ only in a sum no rule will judge are one
                    eqs[e] = UNJUDGED
                else:
                    eqs[e] = (partial, (depth,))
            if any(eqs[e][1] for e in self.closing[depth]):
                logp = self._resolve(depth, eqs, logp)
                if logp is None:
                    continue
            moves.append((value, logp, tuple(eqs[e] for e in self.open_at[depth + 1])))
        return moves

    def _complete(self, depth: int, state: tuple, floor: float) -> tuple[float, tuple] | None:
        """Best (score, values) of the fields from `depth` on, from `state`, if it scores above `floor`, else None.

        Memoised on the state of the open rules: an exact best, or a bound it was found not to beat
        (alpha-beta style), so equal states are solved once and hopeless branches are cut early."""
        if depth == len(self.order):
            return (0.0, ()) if floor < 0.0 else None
        if self.rest[depth] <= floor:
            return None
        key = (depth, state)
        known = self.memo.get(key)
        if known is not None:
            exact, score, values = known
            if exact:
                return (score, values) if score > floor else None
            if score <= floor:  # proven: nothing here beats `score`
                return None
        best = None
        for value, logp, nxt in self._expand(depth, state):
            bar = max(floor, best[0]) if best else floor
            rest = self._complete(depth + 1, nxt, bar - logp)
            if rest is not None:
                best = (logp + rest[0], (value, *rest[1]))
        # Above the floor, the best is exact: every branch cut could not beat it.
        self.memo[key] = (True, *best) if best else (False, floor, ())
        return best

    def runner_ups(self, best: Assignment, floor: float) -> dict[str, float | None]:
        """Per field: the best score of an assignment that gives it another value than `best` does, if above
        `floor` (else None). Max-marginals by one forward and one backward pass over the states the rules
        can be in, keeping only states from which some assignment can still score above `floor`."""
        n = len(self.order)
        forward: list[dict[tuple, float]] = [{(): 0.0}] + [{} for _ in range(n)]
        moves: list[dict[tuple, list]] = [{} for _ in range(n)]
        for d in range(n):
            for state, score in forward[d].items():
                moves[d][state] = self._expand(d, state)
                for _, logp, nxt in moves[d][state]:
                    total = score + logp
                    if total + self.rest[d + 1] > floor and total > forward[d + 1].get(nxt, -math.inf):
                        forward[d + 1][nxt] = total
        backward: dict[tuple, float] = {(): 0.0}
        runner: dict[str, float | None] = {}
        for d in range(n - 1, -1, -1):
            chosen = best.values[self.order[d]]
            here: dict[tuple, float] = {}
            second = -math.inf
            for state, score in forward[d].items():
                for value, logp, nxt in moves[d][state]:
                    tail = backward.get(nxt)
                    if tail is None:
                        continue
                    here[state] = max(here.get(state, -math.inf), logp + tail)
                    if value != chosen:
                        second = max(second, score + logp + tail)
            backward = here
            runner[self.order[d]] = second if second > floor else None
        return runner


@dataclass(frozen=True)
class JointResult:
    consistent: Assignment  # best assignment under the hard rules (log_p -inf: a group left undecided, as read)
    unconstrained: Assignment  # each field's own most probable option
    margins: dict[str, float]  # per field: log p of the best minus the best with that field's value changed (at most the reach)
    moves: float = 0.0  # the moves the searches made (a submission's decodings share MAX_MOVES)


def _within(candidates: dict[str, FieldCandidates], reach: float) -> dict[str, FieldCandidates]:
    """Each field's listed values whose own log p is within `reach` of its top: the only ones an assignment scoring
    within `reach` of the fields' own tops can use (a value a rule names is scored exactly all the same)."""
    narrowed = {}
    for f, c in candidates.items():
        top = _log(c.probs[0]) if c.probs else LOG_FLOOR
        keep = [i for i, p in enumerate(c.probs) if _log(p) - top >= -reach]
        narrowed[f] = replace(c, values=tuple(c.values[i] for i in keep), probs=tuple(c.probs[i] for i in keep),
                              labels=tuple(c.labels[i] for i in keep))
    return narrowed


@lru_cache(maxsize=256)
def _components(fields: tuple[str, ...], rules: tuple[Rule, ...],
                known: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], tuple[Rule, ...]], ...]:
    """The fields split into groups no hard rule connects, each with its rules, smallest first: decoded one by one,
    the same best and margins (independent groups add up), bounds that fit each group, and the budget spent by a
    large group leaves the small ones decided."""
    reads = [(rule, rule.parsed.field_ids(known)) for rule in rules]
    reads = [(rule, ids) for rule, ids in reads if ids and ids <= set(fields)]  # the others cannot be judged here
    group = {f: {f} for f in fields}
    for _, ids in reads:
        first, *others = ids
        for f in others:
            if group[f] is not group[first]:
                merged = group[first] | group[f]
                for g in merged:
                    group[g] = merged
    out, seen = [], set()
    for f in fields:
        if f not in seen:
            members = tuple(g for g in fields if g in group[f])
            seen.update(members)
            out.append((members, tuple(rule for rule, ids in reads if ids & group[f])))
    return tuple(sorted(out, key=lambda g: len(g[0])))


def decode_jointly(candidates: dict[str, FieldCandidates], rules: list[Rule], all_field_ids: dict[str, object],
                   reach: float = MARGIN_CAP, max_moves: float | None = None) -> JointResult:
    """Best consistent and unconstrained assignments, and each field's margin to its runner-up, searched `reach` nats
    below the best (a margin beyond is reported as `reach`: pass the largest margin a decision depends on).

    The work is bounded whatever the form says: when the rules tie too many doubtful fields together (a voters' grid
    read badly), the searches stop after `max_moves` moves in all (default MAX_MOVES), and the groups
    not decided by then keep their own best readings with margin 0, so a person sees all of them; the consistent
    score is then -inf (no consistent assignment known: the form counts as inconsistent as written)."""
    hard = tuple(r for r in rules if r.hard)
    options = {f: _Search._options(c)[0] for f, c in candidates.items()}
    unconstrained = Assignment({f: o[0] for f, o in options.items()}, sum(o[1] for o in options.values()))
    values, log_p, margins, budget = {}, 0.0, {}, _Budget(MAX_MOVES if max_moves is None else max_moves)
    for fields, group_rules in _components(tuple(candidates), hard, tuple(all_field_ids)):
        own = Assignment({f: unconstrained.values[f] for f in fields}, sum(options[f][1] for f in fields))
        plan = _plan(fields, group_rules, tuple(all_field_ids))
        try:
            best, group_margins = _decide(plan, {f: candidates[f] for f in fields}, own, reach, budget)
        except _Undecided:
            best, group_margins = Assignment(own.values, -math.inf), dict.fromkeys(fields, 0.0)
        values.update(best.values)
        log_p += best.log_p
        margins.update(group_margins)
    return JointResult(Assignment({f: values[f] for f in candidates}, log_p), unconstrained, margins,
                       budget.spent)


def _decide(plan: _Plan, candidates: dict[str, FieldCandidates], unconstrained: Assignment, reach: float,
            budget: _Budget) -> tuple[Assignment, dict[str, float]]:
    """One group's best and margins (see decode_jointly)."""
    # The best, searched first among values near each field's own top and wider only when none fits there: an
    # assignment within k nats of the fields' tops uses no value further than k from its field's top. "Another
    # value" is unjudged here: the same best whenever it names every field, found faster.
    for k in BEST_REACH:
        best = _Search(plan, _within(candidates, k), budget, named=False).run(unconstrained.log_p - k)
        if best is not None:
            break
    # Runner-ups are searched only within `reach` of the best: a value whose own shortfall against the field's top
    # option already exceeds the room left cannot take part, so it is dropped.
    narrowed = _within(candidates, unconstrained.log_p - best.log_p + reach)
    # With a field the rules leave at "another value", it goes to a person and so do the margins' bounds; else
    # each rule that names a field's value scores it, so the margins are not capped by a field's residual.
    search = _Search(plan, narrowed, budget, named=OTHER not in best.values.values())
    runner = search.runner_ups(best, best.log_p - reach)
    return best, {f: reach if r is None else best.log_p - r for f, r in runner.items()}

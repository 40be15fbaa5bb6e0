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

from ocr.reader.fields import FieldCandidates
from ocr.templates.model import Rule

OTHER = None  # the "another value" option
UNJUDGED = (0.0, (-1, -1))  # an open rule with two or more "another value" terms: holds whatever the rest (a bound)
LOG_FLOOR = -50.0  # log probability given to an option of probability 0
MARGIN_CAP = 15.0  # runner-ups are searched this many nats below the best: beyond, as good as impossible
MAX_STATES = 5_000  # rule states at one depth of the runner-up search; past it, the margins are not trusted
MAX_MEMO = 50_000  # rule states the best-assignment search may visit (~1 s); past it, nothing is decided


def _log(p: float) -> float:
    return math.log(p) if p > 0 else LOG_FLOOR


class _Undecided(Exception):
    """The rules tie too many doubtful fields together to search them in time."""


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


class _Search:
    """Exact dynamic programme over the fields in a fixed order. The state after the first d fields
    is, for every rule still open, the partial sum of its known terms and which of its fields are
    "another value": what the remaining fields need to know, so equal states are solved once."""

    def __init__(self, candidates: dict[str, FieldCandidates], rules: list[Rule], known: list[str],
                 named: bool = True):
        self.named = named  # whether a rule with one "another value" left names it (else: unjudged, looser, faster)
        linear = [(r, r.parsed.linear(known)) for r in rules]
        unsupported = [r.expr for r, lin in linear if lin is None or r.parsed.cmp != "="]
        if unsupported:
            raise ValueError(f"hard rules must be linear equalities for joint decoding: {unsupported}")
        usable = [(r, lin) for r, lin in linear if lin[0] and lin[0].keys() <= candidates.keys()]
        self.order = self._order(list(candidates), [set(lin[0]) for _, lin in usable])
        self.candidates = [candidates[f] for f in self.order]
        self.options = [self._options(candidates[f]) for f in self.order]
        self.log_p = [dict(opts) for opts in self.options]
        position = {f: i for i, f in enumerate(self.order)}
        self.equations: list[_Equation] = []
        self.terms_at: list[list[tuple[int, float]]] = [[] for _ in self.order]  # (equation, coefficient)
        self.closing: list[list[int]] = [[] for _ in range(len(self.order) + 1)]
        for rule, (coefs, const) in usable:
            terms = tuple(sorted(((position[f], c) for f, c in coefs.items()), key=lambda t: t[0]))
            e = len(self.equations)
            self.equations.append(_Equation(rule, terms, const, dict(terms)))
            self.closing[terms[-1][0]].append(e)
            for pos, coef in terms:
                self.terms_at[pos].append((e, coef))
        best = [opts[0][1] for opts in self.options]
        self.rest = [sum(best[d:]) for d in range(len(best) + 1)]  # the most fields d.. can score
        self.open_at = [tuple(e for e, eq in enumerate(self.equations) if eq.terms[0][0] < d <= eq.terms[-1][0])
                        for d in range(len(self.order) + 1)]

    @staticmethod
    def _options(c: FieldCandidates) -> list[tuple[int | None, float]]:
        options = [(v, _log(p)) for v, p in zip(c.values, c.probs)]
        if c.residual > 0 or not options:
            options.append((OTHER, _log(c.residual)))
        return sorted(options, key=lambda o: -o[1])

    @staticmethod
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

    def run(self) -> Assignment:
        """The best assignment (one always exists: "another value" everywhere leaves every rule unjudged)."""
        self.memo: dict[tuple, tuple[bool, float, tuple]] = {}
        found = self._complete(0, (), -math.inf)
        return Assignment(dict(zip(self.order, found[1])), found[0])

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
        moves = []
        for value, logp in self._choices(depth, closing):
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
        if known is None and len(self.memo) > MAX_MEMO:
            raise _Undecided
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
            if len(forward[d + 1]) > MAX_STATES:
                raise _Undecided
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
    consistent: Assignment  # best assignment under the hard rules
    unconstrained: Assignment  # each field's own most probable option
    margins: dict[str, float]  # per field: log p of the best minus the best with that field's value changed (at most MARGIN_CAP)


def decode_jointly(candidates: dict[str, FieldCandidates], rules: list[Rule],
                   all_field_ids: dict[str, object]) -> JointResult:
    """Best consistent and unconstrained assignments, and each field's margin to its runner-up. When the rules tie
    too many doubtful fields together (a voters' grid read badly), the search gives up: each field keeps its own
    best reading with margin 0, so a person sees all of them."""
    search = _Search(candidates, [r for r in rules if r.hard], list(all_field_ids), named=False)
    free = {f: search.options[i][0][0] for i, f in enumerate(search.order)}
    unconstrained = Assignment(free, sum(o[0][1] for o in search.options))
    try:
        return _decide(candidates, rules, all_field_ids, search, unconstrained)
    except _Undecided:
        return JointResult(unconstrained, unconstrained, {f: 0.0 for f in search.order})


def _decide(candidates: dict[str, FieldCandidates], rules: list[Rule], all_field_ids: dict[str, object],
            search: _Search, unconstrained: Assignment) -> JointResult:
    best = search.run()  # "another value" unjudged: the same best when it names every field, found faster
    # Runner-ups are searched only within MARGIN_CAP of the best: a value whose own shortfall against
    # the field's top option already exceeds the room left cannot take part, so it is dropped.
    room = best.log_p - MARGIN_CAP - unconstrained.log_p
    narrowed = {}
    for f, c in candidates.items():
        top = _log(c.probs[0]) if c.probs else LOG_FLOOR
        keep = [i for i, p in enumerate(c.probs) if _log(p) - top >= room]
        narrowed[f] = replace(c, values=tuple(c.values[i] for i in keep), probs=tuple(c.probs[i] for i in keep),
                              labels=tuple(c.labels[i] for i in keep))
    # With a field the rules leave at "another value", it goes to a person and so do the margins' bounds; else
    # each rule that names a field's value scores it, so the margins are not capped by a field's residual.
    search = _Search(narrowed, [r for r in rules if r.hard], list(all_field_ids), named=OTHER not in best.values.values())
    runner = search.runner_ups(best, best.log_p - MARGIN_CAP)
    margins = {f: MARGIN_CAP if r is None else best.log_p - r for f, r in runner.items()}
    return JointResult(best, unconstrained, margins)

"""Arithmetic rules of a form, written as declarative expressions and parsed without `eval`.

Grammar (whitespace free between tokens)::

    rule    := expr CMP expr            CMP: =  <=  >=  <  >
    expr    := term (('+' | '-') term)*
    term    := factor ('*' factor)*
    factor  := NUMBER | FIELD | 'sum' '(' PATTERN ')' | 'ceil' '(' expr ')' | '(' expr ')'

FIELD is a field id (`suara_sah`); PATTERN is a field id in which `#` stands for a number
(`suara_paslon_#` matches `suara_paslon_1`, `suara_paslon_2`, ... but not
`suara_paslon_1_baris_2`). A `sum` over a pattern that matches no field is 0, so one rule serves
forms with and without a `suara_kolom_kosong`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Union

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[a-z_][a-z0-9_#]*)|(?P<op><=|>=|[=<>+\-*()]))")
COMPARATORS = ("=", "<=", ">=", "<", ">")


class RuleSyntaxError(ValueError):
    """An expression that does not follow the rule grammar; the message says where."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class FieldRef:
    field_id: str


@dataclass(frozen=True)
class SumOf:
    pattern: str

    def matches(self, field_ids: Iterable[str]) -> list[str]:
        regex = re.compile("^" + re.escape(self.pattern).replace(re.escape("#"), r"\d+") + "$")
        return sorted((f for f in field_ids if regex.match(f)), key=_natural_key)


@dataclass(frozen=True)
class Ceil:
    arg: "Expr"


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - *
    left: "Expr"
    right: "Expr"


Expr = Union[Num, FieldRef, SumOf, Ceil, BinOp]


@dataclass(frozen=True)
class Comparison:
    """A parsed rule: `left cmp right`, true within `tolerance` (absolute, in votes) for `=`."""

    text: str
    cmp: str
    left: Expr
    right: Expr

    def field_ids(self, known: Iterable[str]) -> set[str]:
        """Field ids this rule reads, `sum` patterns expanded against `known` ids."""
        known = list(known)
        found: set[str] = set()
        for node in (self.left, self.right):
            found |= _fields_of(node, known)
        return found

    def direct_fields(self) -> set[str]:
        """Field ids named literally (not through a `sum` pattern): each must exist."""
        return _direct_fields(self.left) | _direct_fields(self.right)

    def linear(self, known: Iterable[str]) -> tuple[dict[str, float], float] | None:
        """`left - right` as (coefficient per field, constant), `sum` expanded against `known`; None if not linear."""
        known = list(known)
        try:
            left, right = _linear(self.left, known), _linear(self.right, known)
        except _NotLinear:
            return None
        coefs = dict(left[0])
        for f, c in right[0].items():
            coefs[f] = coefs.get(f, 0.0) - c
        return {f: c for f, c in coefs.items() if c != 0}, left[1] - right[1]

    def holds(self, values: Mapping[str, int], tolerance: float = 0.0) -> bool:
        """Evaluate with `values` (field id -> number); every field read must be present."""
        lhs = evaluate(self.left, values)
        rhs = evaluate(self.right, values)
        if self.cmp == "=":
            return abs(lhs - rhs) <= tolerance
        if self.cmp == "<=":
            return lhs <= rhs + tolerance
        if self.cmp == ">=":
            return lhs + tolerance >= rhs
        if self.cmp == "<":
            return lhs < rhs + tolerance
        return lhs + tolerance > rhs


def _natural_key(field_id: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", field_id)]


def _fields_of(node: Expr, known: list[str]) -> set[str]:
    if isinstance(node, FieldRef):
        return {node.field_id}
    if isinstance(node, SumOf):
        return set(node.matches(known))
    if isinstance(node, Ceil):
        return _fields_of(node.arg, known)
    if isinstance(node, BinOp):
        return _fields_of(node.left, known) | _fields_of(node.right, known)
    return set()


class _NotLinear(Exception):
    pass


def _linear(node: Expr, known: list[str]) -> tuple[dict[str, float], float]:
    if isinstance(node, Num):
        return {}, node.value
    if isinstance(node, FieldRef):
        return {node.field_id: 1.0}, 0.0
    if isinstance(node, SumOf):
        return {f: 1.0 for f in node.matches(known)}, 0.0
    if isinstance(node, BinOp):
        (lc, lk), (rc, rk) = _linear(node.left, known), _linear(node.right, known)
        if node.op == "*":
            if lc and rc:
                raise _NotLinear
            scale, (coefs, const) = (rk, (lc, lk)) if lc else (lk, (rc, rk))
            return {f: c * scale for f, c in coefs.items()}, const * scale
        sign = 1.0 if node.op == "+" else -1.0
        out = dict(lc)
        for f, c in rc.items():
            out[f] = out.get(f, 0.0) + sign * c
        return out, lk + sign * rk
    raise _NotLinear  # ceil


def _direct_fields(node: Expr) -> set[str]:
    if isinstance(node, FieldRef):
        return {node.field_id}
    if isinstance(node, Ceil):
        return _direct_fields(node.arg)
    if isinstance(node, BinOp):
        return _direct_fields(node.left) | _direct_fields(node.right)
    return set()


def evaluate(node: Expr, values: Mapping[str, int]) -> float:
    """Value of an expression; `sum` patterns are expanded over the keys of `values`."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, FieldRef):
        return values[node.field_id]
    if isinstance(node, SumOf):
        return sum(values[f] for f in node.matches(values))
    if isinstance(node, Ceil):
        # Round before ceil so 0.025 * 200 = 5.000000001 stays 5.
        return math.ceil(round(evaluate(node.arg, values), 9))
    lhs, rhs = evaluate(node.left, values), evaluate(node.right, values)
    if node.op == "+":
        return lhs + rhs
    if node.op == "-":
        return lhs - rhs
    return lhs * rhs


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise RuleSyntaxError(f"unexpected character {text[pos:].strip()[:1]!r} at column {pos + 1} in {text!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise RuleSyntaxError(f"expression ends early: {self.text!r}")
        if value is not None and token[1] != value:
            raise RuleSyntaxError(f"expected {value!r} at column {token[2] + 1}, found {token[1]!r} in {self.text!r}")
        self.i += 1
        return token

    def rule(self) -> Comparison:
        left = self.expr()
        token = self.take()
        if token[1] not in COMPARATORS:
            raise RuleSyntaxError(f"expected one of {' '.join(COMPARATORS)} at column {token[2] + 1} in {self.text!r}")
        right = self.expr()
        if self.peek() is not None:
            extra = self.peek()
            raise RuleSyntaxError(f"unexpected {extra[1]!r} at column {extra[2] + 1} in {self.text!r}")
        return Comparison(text=self.text.strip(), cmp=token[1], left=left, right=right)

    def expr(self) -> Expr:
        node = self.term()
        while self.peek() and self.peek()[1] in "+-":
            op = self.take()[1]
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Expr:
        node = self.factor()
        while self.peek() and self.peek()[1] == "*":
            self.take()
            node = BinOp("*", node, self.factor())
        return node

    def factor(self) -> Expr:
        kind, value, col = self.take()
        if kind == "num":
            return Num(float(value))
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind == "name" and value in ("sum", "ceil"):
            self.take("(")
            if value == "sum":
                arg_kind, pattern, arg_col = self.take()
                if arg_kind != "name":
                    raise RuleSyntaxError(f"sum() takes a field pattern, found {pattern!r} at column {arg_col + 1}")
                node: Expr = SumOf(pattern)
            else:
                node = Ceil(self.expr())
            self.take(")")
            return node
        if kind == "name":
            if "#" in value:
                raise RuleSyntaxError(f"pattern {value!r} outside sum() at column {col + 1} in {self.text!r}")
            return FieldRef(value)
        raise RuleSyntaxError(f"unexpected {value!r} at column {col + 1} in {self.text!r}")


def parse_rule(text: str) -> Comparison:
    """Parse one rule such as `suara_total = suara_sah + suara_tidak_sah`."""
    return _Parser(text).rule()

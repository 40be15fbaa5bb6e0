"""A form's rules as people read them: each field by the label the form prints, not by its id."""

from __future__ import annotations

from ocr.templates.catalog import get_template
from ocr.templates.model import FormTemplate
from ocr.templates.rules import BinOp, Ceil, Expr, FieldRef, Num, SumOf, parse_rule

SUM_SHOWN = 3  # a sum of more fields shows its first and last around an ellipsis
COMPARATORS = {"=": "=", "<=": "≤", ">=": "≥", "<": "<", ">": ">"}


def _label(template: FormTemplate, field_id: str) -> str:
    field = template.fields.get(field_id)
    return field.label if field is not None and field.label else field_id


def _empty_sum(node: Expr, template: FormTemplate) -> bool:
    # A sum over no field is 0 (`sum(suara_kolom_kosong)` on a form without that column): said, it is noise.
    return isinstance(node, SumOf) and not node.matches(template.fields)


def _words(node: Expr, template: FormTemplate, inner: bool = False) -> str:
    """`node` in words; `inner`: it stands beside a `*` or after a `-`, where a sum needs brackets."""
    if isinstance(node, Num):
        return f"{node.value:g}"
    if isinstance(node, FieldRef):
        return _label(template, node.field_id)
    if isinstance(node, SumOf):
        names = [_label(template, f) for f in node.matches(template.fields)] or ["0"]
        if len(names) > SUM_SHOWN:
            names = [names[0], "…", names[-1]]
        text = " + ".join(names)
        return f"({text})" if inner and len(names) > 1 else text
    if isinstance(node, Ceil):
        return f"⌈{_words(node.arg, template)}⌉"
    assert isinstance(node, BinOp)
    if node.op == "+" and _empty_sum(node.right, template):
        return _words(node.left, template, inner)
    if node.op == "+" and _empty_sum(node.left, template):
        return _words(node.right, template, inner)
    times = node.op == "*"
    text = (f"{_words(node.left, template, times)} {'×' if times else node.op} "
            f"{_words(node.right, template, times or node.op == '-')}")
    return f"({text})" if inner and not times else text


def rule_words(expr: str, template_id: str | None) -> str:
    """The rule `expr` of the template `template_id` with its fields named by their labels (as written without one)."""
    if template_id is None:
        return expr
    template = get_template(template_id)
    rule = parse_rule(expr)
    return f"{_words(rule.left, template)} {COMPARATORS[rule.cmp]} {_words(rule.right, template)}"

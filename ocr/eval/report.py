"""Results for people: rich tables of a submission, a batch summary and an evaluation."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Column, Table
from rich.text import Text

from ocr.eval.score import Evaluation
from ocr.record import SUBMISSION_STATUSES, SubmissionResult

STATUS_STYLE = {"ok": "green", "corrected": "cyan", "review": "bold yellow", "unreadable": "bold red",
                "incomplete": "bold red", "rejected": "bold red", "error": "bold red"}


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def result_table(result: SubmissionResult) -> Group:
    """Header (submission, template, status, reasons), the pages, then one row per field."""
    head = Text.assemble(f"{result.submission}  ", (result.template or "no template", "bold"), "  ",
                         _status(result.status.upper()))
    parts = [head]
    parts += [Text(f"  ! {r}", style="yellow") for r in result.reasons]
    pages = Table("photo", "page", "status", "quality / reason", title="pages", title_justify="left")
    for p in result.pages:
        detail = "; ".join(f"{e.code}: {e.message}" for e in p.errors) or (
            f"markers {p.quality.markers_found}/4, tag {'read' if p.quality.tag_read else 'not read'}, "
            f"residual {p.quality.residual_mm:.2f} mm, sharpness {p.quality.sharpness:.2f}" if p.quality else "")
        pages.add_row(Path(p.source).name, str(p.page or "-"), _status(p.status), detail)
    parts.append(pages)
    if result.fields:
        fields = Table("page", "value", "confidence", "status", "reasons", title="fields", title_justify="left")
        fields.columns.insert(0, Column("field", no_wrap=True))
        for field_id, f in result.fields.items():
            value = "-" if f.value is None else str(f.value)
            if f.read_value is not None and f.read_value != f.value:
                value += f" (read {f.read_value})"
            fields.add_row(field_id, str(f.page), value, f"{f.confidence:.4f}", _status(f.status), "; ".join(map(str, f.reasons)))
        parts.append(fields)
        failed = [c for c in result.checks if not c.ok]
        checks = Text(f"rules: {sum(c.ok for c in result.checks)} of {len(result.checks)} hold")
        checks.append_text(Text("".join(f"\n  fails ({'hard' if c.hard else 'soft'}): {c.rule}" for c in failed),
                                style="yellow"))
        parts.append(checks)
    return Group(*parts)


def evaluation_table(ev: Evaluation) -> Group:
    table = Table("measure", "value", title="evaluation", title_justify="left")
    table.add_row("submissions", f"{ev.submissions} ({len(ev.without_truth)} without truth.json)")
    for status in SUBMISSION_STATUSES:
        table.add_row(f"  {status}", f"{ev.by_status[status]} ({ev.share(status):.1%})")
    table.add_row("field accuracy (emitted values)", f"{ev.accuracy:.4%} ({ev.right} of {ev.emitted})")
    table.add_row("silently wrong fields", f"{ev.silent_rate:.4%} ({ev.silent} of {ev.fields})")
    table.add_row("boxes read wrong", f"{sum(ev.confusions.values())} of {ev.boxes}")
    confusions = Table("written", "read as", "boxes", title="digit confusions", title_justify="left")
    for (written, read), n in ev.confusions.most_common(10):
        confusions.add_row(written, read, str(n))
    reasons = Table("reason code", "count", title="reasons", title_justify="left")
    for code, n in ev.reasons.most_common():
        reasons.add_row(code, str(n))
    return Group(table, confusions, reasons)

"""`formc eval`: a batch's results against the synthesiser's truth (truth.json per submission folder).

Silently wrong = a field whose value differs from what is written while the field is `ok` or
`corrected` and its submission `ok`: published without a person looking. That number must stay 0.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ocr.reader.digits import CLASSES
from ocr.reader.reasons import FindingCode
from ocr.record import SubmissionResult
from ocr.synth.crops import GLYPH_CLASS

# Findings about a whole submission, on no page or field: counted from the submission's own reasons.
SUBMISSION_FINDINGS = (FindingCode.MISSING_PAGE, FindingCode.DUPLICATE_PHOTOS)


@dataclass
class Evaluation:
    submissions: int = 0
    without_truth: list[str] = field(default_factory=list)
    by_status: Counter = field(default_factory=Counter)
    fields: int = 0  # fields of the submissions with truth
    emitted: int = 0  # fields with a value
    right: int = 0  # emitted and equal to the truth
    silent: int = 0
    reasons: Counter = field(default_factory=Counter)  # reason codes over fields, refused pages and SUBMISSION_FINDINGS
    confusions: Counter = field(default_factory=Counter)  # (written class, read class) of boxes read wrong
    boxes: int = 0

    @property
    def accuracy(self) -> float:
        return self.right / self.emitted if self.emitted else 0.0

    @property
    def silent_rate(self) -> float:
        return self.silent / self.fields if self.fields else 0.0

    def share(self, status: str) -> float:
        return self.by_status[status] / self.submissions if self.submissions else 0.0


def load_results(path: Path) -> list[SubmissionResult]:
    return [SubmissionResult.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate_results(results: Iterable[SubmissionResult], truth_dir: Path) -> Evaluation:
    """Scores each result against `truth_dir/<submission>/truth.json` (results without one are listed)."""
    ev = Evaluation()
    for result in results:
        ev.submissions += 1
        ev.by_status[result.status] += 1
        ev.reasons.update(str(e.code) for p in result.pages for e in p.errors)
        ev.reasons.update(str(r.code) for r in result.reasons if r.code in SUBMISSION_FINDINGS)
        truth_file = truth_dir / result.submission / "truth.json"
        # A name that leaves truth_dir (`../x`, `/abs`) has no truth in it: nothing outside is read.
        inside = Path(os.path.normpath(truth_file)).is_relative_to(os.path.normpath(truth_dir))
        if not inside or not truth_file.is_file():
            ev.without_truth.append(result.submission)
            continue
        truth = json.loads(truth_file.read_text())
        for field_id, written in truth["fields"].items():
            ev.fields += 1
            read = result.fields.get(field_id)
            if read is None:  # its page was refused
                continue
            ev.reasons.update({str(r.code) for r in read.reasons})
            if read.value is not None:
                ev.emitted += 1
                ev.right += read.value == written
                ev.silent += read.value != written and read.status in ("ok", "corrected") and result.status == "ok"
            for char, digit in zip(truth["glyphs"].get(field_id, ""), read.digits):
                if char not in GLYPH_CLASS:
                    continue  # a box struck through as unused has no class of its own
                ev.boxes += 1
                if CLASSES[GLYPH_CLASS[char]] != digit.label:
                    ev.confusions[(CLASSES[GLYPH_CLASS[char]], digit.label)] += 1
    return ev

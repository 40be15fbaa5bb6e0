"""Read every synthetic TPS below the given folders with the whole pipeline and set it beside its truth.

One block per submission: its status and reasons, then the headline fields as read (value and
status; `!=` where the value differs from what truth.json says is written).
"""

import json
import sys
from pathlib import Path

from ocr.digits import DigitClassifier
from ocr.read import read_submission

KEY_FIELDS = ("dpt_j", "pengguna_total_j", "suara_sah", "suara_tidak_sah", "suara_total")

classifier = DigitClassifier()
for root in sys.argv[1:] or ["samples"]:
    for path in sorted(Path(root).rglob("truth.json")):
        truth = json.loads(path.read_text())
        photos = [(str(path.parent / name), (path.parent / name).read_bytes()) for name in truth["pages"].values()]
        result = read_submission(photos, classifier=classifier)
        slip = truth.get("slip")
        note = f"  (written with a slip: {slip['field']} {slip['written_value']}, sums give {slip['consistent_value']})" \
            if slip else ""
        reasons = "; ".join(result.verdict.reasons) if result.verdict else ""
        print(f"{path.parent}  [{truth['template']}, {truth['profile']}]  {result.status.upper()}{note}"
              + (f"  {reasons}" if reasons else ""))
        if result.verdict is None:
            continue
        votes = [k for k in truth["fields"] if k.startswith("suara_") and "baris" not in k and k[6:12] in ("paslon", "kolom_")]
        cells = []
        for field_id in (*KEY_FIELDS, *votes):
            v = result.verdict.fields.get(field_id)
            if v is None:
                continue
            mark = "" if v.value == truth["fields"][field_id] else f" != {truth['fields'][field_id]}"
            cells.append(f"{field_id}={v.value}{mark} ({v.status})")
        print("    " + ", ".join(cells))
        doubtful = [f"{f}={v.value} ({v.status}: {', '.join(v.reasons)})" for f, v in result.verdict.fields.items()
                    if v.status != "ok" and f not in (*KEY_FIELDS, *votes)]
        if doubtful:
            print(f"    also {len(doubtful)} other field(s) not ok: " + "; ".join(doubtful[:4]))

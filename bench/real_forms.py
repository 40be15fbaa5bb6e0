"""The real photos' numbers one by one, per form: what `formc batch` emitted (`ok` or `corrected`) right or wrong,
what it sent to review, what it did not read; beside ../shared/tools/score-real, which counts a number right only
in a submission that is `ok` as a whole.

    FORMC_REFERENCE_IMAGES=../shared/real formc batch ../shared/real --out real.jsonl
    .venv/bin/python bench/real_forms.py real.jsonl [--labels ../shared/real/labels.json] [--held-out]

--held-out leaves out the photos a shipped reference-image template was made on (their file names in its pages).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import yaml

COLUMNS = ("emitted right", "emitted WRONG", "review, value right", "review, value wrong", "not read")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--labels", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real" / "labels.json")
    ap.add_argument("--held-out", action="store_true", help="leave out the photos the shipped templates were made on")
    args = ap.parse_args()
    labels = json.loads(args.labels.read_text())
    if args.held_out:
        from ocr.templates.catalog import reference_files

        made_on = {page["image"] for path in reference_files() for page in yaml.safe_load(path.read_text())["pages"]}
        labels = {image: label for image, label in labels.items() if image not in made_on}
    records = {}
    for line in args.results.read_text().splitlines():
        record = json.loads(line)
        for page in record.get("pages", []):
            records[Path(page.get("source", "")).name] = record
    per_form: dict[str, Counter] = defaultdict(Counter)
    photos: dict[str, Counter] = defaultdict(Counter)
    for image, label in sorted(labels.items()):
        record = records.get(image, {})
        fields = record.get("fields", {})
        photos[label["form"]]["read" if fields else "refused"] += 1
        for field_id, truth in (label.get("fields") or {}).items():
            if truth is None:
                continue
            got = fields.get(field_id)
            if got is None:
                kind = "not read"
            elif got["status"] in ("ok", "corrected"):
                kind = "emitted right" if got["value"] == truth else "emitted WRONG"
            else:
                kind = "review, value right" if got["value"] == truth else "review, value wrong"
            per_form[label["form"]][kind] += 1
    print("| form | photos read / refused | labelled | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    total: Counter = Counter()
    for form, counts in sorted(per_form.items()):
        total.update(counts)
        print(f"| {form} | {photos[form]['read']} / {photos[form]['refused']} | {sum(counts.values())} | "
              + " | ".join(str(counts[c]) for c in COLUMNS) + " |")
    print(f"| all | {sum(p['read'] for p in photos.values())} / {sum(p['refused'] for p in photos.values())} | "
          f"{sum(total.values())} | " + " | ".join(str(total[c]) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()

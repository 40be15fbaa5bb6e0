"""Compare two `formc batch` JSONL files: same submissions, statuses, field values, and box positions.

    python bench/compare_results.py BEFORE.jsonl AFTER.jsonl [--tolerance-mm 0.001]

Records are matched by submission name. For each: submission status and template; every field's
value, status, read value, confidence (to 1e-6) and reasons (as `code: detail`, so that records of
schema 1, where reasons were free text, compare with later ones); and, where both records carry
page geometry, each page's homography and every box's corners in page mm. Prints one line per
difference and a summary; exit 1 when anything differs. Timings are not compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(path: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def reason_text(reason: str | dict) -> str:
    """A field or submission reason as `code: detail` (schema 1 wrote that text; later schemas an object)."""
    if isinstance(reason, str):
        return reason
    return f"{reason['code']}: {reason['detail']}" if reason.get("detail") else reason["code"]


def _close(a: list, b: list, tol: float) -> bool:
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return abs(a - b) <= tol


def compare_geometry(name: str, before: dict, after: dict, tol_mm: float) -> tuple[list[str], int]:
    """Differences in page homographies and box corners; and how many boxes were compared."""
    diffs, compared = [], 0
    for i, (pb, pa) in enumerate(zip(before["pages"], after["pages"])):
        gb, ga = pb.get("geometry"), pa.get("geometry")
        if gb is None or ga is None:
            if (gb is None) != (ga is None) and "geometry" in pb and "geometry" in pa:
                diffs.append(f"{name} page {i}: geometry present in one record only")
            continue
        if not _close(gb["page_homography"], ga["page_homography"], 1e-6 * max(map(abs, sum(gb["page_homography"], [])))):
            diffs.append(f"{name} page {i}: page_homography differs")
        boxes_b = {(b["field_id"], b["index"]): b for b in gb["boxes"]}
        boxes_a = {(b["field_id"], b["index"]): b for b in ga["boxes"]}
        if boxes_b.keys() != boxes_a.keys():
            diffs.append(f"{name} page {i}: boxes differ: {sorted(boxes_b.keys() ^ boxes_a.keys())[:4]}")
        for key in boxes_b.keys() & boxes_a.keys():
            compared += 1
            b, a = boxes_b[key], boxes_a[key]
            if not _close(b["corners_mm"], a["corners_mm"], tol_mm) or b["placed"] != a["placed"]:
                diffs.append(f"{name} page {i} box {key}: {b['corners_mm'][0]} placed {b['placed']} -> "
                             f"{a['corners_mm'][0]} placed {a['placed']}")
    return diffs, compared


def compare(before: dict[str, dict], after: dict[str, dict], tol_mm: float) -> tuple[list[str], int, int, int]:
    """(differences, submissions compared, fields compared, boxes compared)."""
    diffs = [f"{s}: only in BEFORE" for s in before.keys() - after.keys()]
    diffs += [f"{s}: only in AFTER" for s in after.keys() - before.keys()]
    fields = boxes = 0
    for name in sorted(before.keys() & after.keys()):
        b, a = before[name], after[name]
        for key in ("status", "template", "photos_key"):
            if b[key] != a[key]:
                diffs.append(f"{name}: {key} {b[key]!r} -> {a[key]!r}")
        if [reason_text(r) for r in b["reasons"]] != [reason_text(r) for r in a["reasons"]]:
            diffs.append(f"{name}: reasons {b['reasons']} -> {a['reasons']}")
        if b["fields"].keys() != a["fields"].keys():
            diffs.append(f"{name}: fields {sorted(b['fields'].keys() ^ a['fields'].keys())}")
        for field_id in sorted(b["fields"].keys() & a["fields"].keys()):
            fields += 1
            fb, fa = b["fields"][field_id], a["fields"][field_id]
            for key in ("value", "status", "read_value", "page"):
                if fb[key] != fa[key]:
                    diffs.append(f"{name} {field_id}: {key} {fb[key]!r} -> {fa[key]!r}")
            if abs(fb["confidence"] - fa["confidence"]) > 1e-6:
                diffs.append(f"{name} {field_id}: confidence {fb['confidence']} -> {fa['confidence']}")
            if [reason_text(r) for r in fb["reasons"]] != [reason_text(r) for r in fa["reasons"]]:
                diffs.append(f"{name} {field_id}: reasons {fb['reasons']} -> {fa['reasons']}")
        geometry_diffs, compared = compare_geometry(name, b, a, tol_mm)
        diffs, boxes = diffs + geometry_diffs, boxes + compared
    return diffs, len(before.keys() & after.keys()), fields, boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tolerance-mm", type=float, default=0.001)
    args = parser.parse_args()
    diffs, submissions, fields, boxes = compare(load(args.before), load(args.after), args.tolerance_mm)
    for line in diffs:
        print(line)
    print(f"{submissions} submissions, {fields} fields, {boxes} box positions (where both records carry geometry) "
          f"compared: {len(diffs)} difference(s)")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()

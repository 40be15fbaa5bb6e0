"""Print one line per synthetic TPS below the given folders: what its truth.json says is written on it."""

import json
import sys
from pathlib import Path

KEY_FIELDS = ("dpt_j", "pengguna_total_j", "suara_sah", "suara_tidak_sah", "suara_total")

for root in sys.argv[1:] or ["samples"]:
    for path in sorted(Path(root).rglob("truth.json")):
        truth = json.loads(path.read_text())
        numbers = ", ".join(f"{k}={truth['fields'][k]}" for k in KEY_FIELDS)
        votes = ", ".join(f"{k[6:]}={v}" for k, v in truth["fields"].items()
                          if k.startswith("suara_") and "baris" not in k and k[6:12] in ("paslon", "kolom_"))
        slip = truth.get("slip")
        note = f"  SLIP: {slip['field']} written {slip['written_value']}, sums give {slip['consistent_value']}" if slip else ""
        print(f"{path.parent}  [{truth['template']}, {truth['profile']}]  {numbers}; {votes}{note}")

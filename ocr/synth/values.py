"""Realistic numbers for one polling station (TPS), consistent with every hard rule of its template.

DPT 150-600 voters, turnout 55-92 %, a few DPTb/DPK voters, the ballot reserve of the template
(`params.reserve`, 2.5 % of DPT for Pilkada), 0.5-5 % invalid votes, the valid votes split among
the vote columns, and the tally grid's row sums (60 strokes fit a row: 12 cells of 5).
`make_inconsistent` then writes one number the way a KPPS officer slips on the paper.
"""

from __future__ import annotations

import math

import numpy as np

from ocr.templates.model import FormTemplate

TALLY_PER_ROW = 60  # 12 cells x 5 strokes
ROW_SUM_MAX = 99  # two boxes


def _binomial(rng: np.random.Generator, n: int, p: float) -> int:
    return int(rng.binomial(n, min(max(p, 0.0), 1.0)))  # a jittered turnout may fall outside [0, 1]


def _small(rng: np.random.Generator, p_zero: float, high: int) -> int:
    return 0 if rng.random() < p_zero else int(rng.integers(1, high + 1))


def tally_rows(votes: int, rows: int) -> list[int]:
    """Row sums of a tally grid holding `votes`: rows filled to 60 in order, overflow spread up to 99."""
    filled = [min(TALLY_PER_ROW, max(0, votes - r * TALLY_PER_ROW)) for r in range(rows)]
    excess = votes - sum(filled)
    r = 0
    while excess > 0:
        add = min(excess, ROW_SUM_MAX - filled[r])
        filled[r] += add
        excess -= add
        r += 1
    return filled


def _split_votes(rng: np.random.Generator, total: int, parts: int, cap: int) -> list[int]:
    """Split `total` among `parts` columns with popularity differences; no part above `cap`."""
    while True:
        shares = rng.dirichlet(np.full(parts, rng.uniform(0.6, 3.0)))
        split = rng.multinomial(total, shares).tolist()
        if max(split) <= cap:
            return split


def realistic_values(template: FormTemplate, rng: np.random.Generator) -> dict[str, int]:
    """Every numeric field of `template`, satisfying all its hard rules."""
    reserve = float(template.params.get("reserve", "0.025"))
    tally_rows_count = {g.field_id: g.rows for p in template.pages for g in p.tally_grids}
    while True:
        v: dict[str, int] = {}
        dpt_j = int(rng.integers(150, 601))
        v["dpt_l"] = _binomial(rng, dpt_j, rng.uniform(0.45, 0.55))
        v["dpt_p"] = dpt_j - v["dpt_l"]
        turnout = rng.uniform(0.55, 0.92)
        for k in ("l", "p"):
            v[f"pengguna_dpt_{k}"] = _binomial(rng, v[f"dpt_{k}"], turnout + rng.normal(0, 0.03))
            v[f"pengguna_dptb_{k}"] = _small(rng, 0.5, 8)
            v[f"pengguna_dpk_{k}"] = _small(rng, 0.6, 5)
            v[f"pengguna_total_{k}"] = sum(v[f"pengguna_{row}_{k}"] for row in ("dpt", "dptb", "dpk"))
            v[f"disabilitas_{k}"] = min(_small(rng, 0.5, 4), v[f"pengguna_total_{k}"])
        for row in ("dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total", "disabilitas"):
            v[f"{row}_j"] = v[f"{row}_l"] + v[f"{row}_p"]
        v["surat_diterima"] = dpt_j + math.ceil(round(reserve * dpt_j, 9))
        v["surat_digunakan"] = v["pengguna_total_j"]
        v["surat_rusak"] = _small(rng, 0.6, 3)
        v["surat_sisa"] = v["surat_diterima"] - v["surat_digunakan"] - v["surat_rusak"]
        v["suara_total"] = v["pengguna_total_j"]
        v["suara_tidak_sah"] = _binomial(rng, v["suara_total"], rng.uniform(0.005, 0.05))
        v["suara_sah"] = v["suara_total"] - v["suara_tidak_sah"]
        if v["surat_sisa"] < 0 or v["suara_tidak_sah"] > ROW_SUM_MAX * 5:
            continue
        cap = ROW_SUM_MAX * tally_rows_count.get(f"suara_{template.columns[0]}", 5)
        for column, votes in zip(template.columns, _split_votes(rng, v["suara_sah"], len(template.columns), cap)):
            v[f"suara_{column}"] = votes
        for field_id, rows in tally_rows_count.items():
            for r, count in enumerate(tally_rows(v[field_id], rows), start=1):
                v[f"{field_id}_baris_{r}"] = count
        values = {f: v[f] for f in template.fields}
        if not template.failed_rules(values, hard_only=True):
            return values


# Fields whose written value an officer computes (and so can get wrong), with the rule it breaks.
_SLIP_FIELDS = ("suara_sah", "suara_total", "pengguna_total_j", "dpt_j", "surat_sisa", "pengguna_total_l",
                "suara_tidak_sah")


def make_inconsistent(template: FormTemplate, values: dict[str, int], rng: np.random.Generator
                      ) -> tuple[dict[str, int], dict]:
    """Values with one KPPS arithmetic slip written on the paper, and a record of the slip."""
    field_id = str(rng.choice([f for f in _SLIP_FIELDS if f in values]))
    true_value = values[field_id]
    while True:
        kind = rng.choice(["off_by_small", "off_by_ten", "carry"])
        if kind == "off_by_small":
            written = true_value + int(rng.choice([-3, -2, -1, 1, 2, 3]))
        elif kind == "off_by_ten":
            written = true_value + int(rng.choice([-10, 10]))
        else:  # a forgotten carry: 189 + 159 written as 338 or 248
            written = true_value - int(rng.choice([10, 100]))
        if 0 <= written <= 999 and written != true_value:
            break
    slipped = dict(values)
    slipped[field_id] = written
    broken = [r.expr for r in template.failed_rules(slipped, hard_only=True)]
    return slipped, {"field": field_id, "consistent_value": true_value, "written_value": written,
                     "kind": str(kind), "rules_broken": broken}

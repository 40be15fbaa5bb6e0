"""Found boxes grouped into fields (horizontal runs of 2-5 equal boxes), in reading order, with ids and rules.

A run is a chain of boxes of the same size on one line, each the next's neighbour at the same pitch (touching or
evenly spaced, the gap under half a box); longer chains are grids (tally cells), not numbers, and single boxes are
not numbers either. Fields are ordered in rows (top to bottom, a row being fields whose middles are level) and
left to right in a row. A field's boxes are written as one row of equal boxes at a fixed pitch (the template file's
form), fitted to what was measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import regex

from ocr.learn.boxes import FoundBox
from ocr.templates.model import RectMM

RUN_LENGTHS = (2, 5)  # boxes of one number
SAME_SIZE = 0.1  # relative difference of sides within a run
MAX_GAP = 0.6  # gap between boxes of a run, in box widths


@dataclass(frozen=True)
class LearnedField:
    id: str
    label: str  # the printed row label as read (empty when unread)
    row: int  # 1-based reading-order row of the page
    col: int  # 1-based position in its row
    boxes_mm: tuple[RectMM, ...]  # equal boxes at one pitch, page mm (x, y, w, h), centre lines of the frames
    stroke_mm: float


def _same_line(a: FoundBox, b: FoundBox) -> bool:
    """Boxes of the same size, level with each other."""
    ax, ay, aw, ah = a.rect_mm
    bx, by, bw, bh = b.rect_mm
    return abs(aw - bw) <= SAME_SIZE * aw and abs(ah - bh) <= SAME_SIZE * ah and abs(ay - by) <= SAME_SIZE * ah


def _neighbours(a: FoundBox, b: FoundBox) -> bool:
    """Whether b is the next box of a's run, to its right."""
    gap = b.rect_mm[0] - (a.rect_mm[0] + a.rect_mm[2])
    return _same_line(a, b) and -0.2 * a.rect_mm[2] <= gap <= MAX_GAP * a.rect_mm[2]


def runs(boxes: list[FoundBox]) -> list[list[FoundBox]]:
    """Chains of neighbouring boxes left to right, split where the gap changes; every box in one chain."""
    ordered = sorted(boxes, key=lambda b: b.rect_mm[0])
    nxt: dict[int, int] = {}
    taken: set[int] = set()
    for i, a in enumerate(ordered):
        after = [j for j in range(i + 1, len(ordered)) if j not in taken and _neighbours(a, ordered[j])]
        if after:
            j = min(after, key=lambda j: ordered[j].rect_mm[0])
            nxt[i] = j
            taken.add(j)
    chains = []
    for i in range(len(ordered)):
        if i in taken:
            continue
        chain = [i]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        chains.extend(_split_at_pitch([ordered[k] for k in chain]))
    return _without_grids(chains)


def _without_grids(chains: list[list[FoundBox]]) -> list[list[FoundBox]]:
    """Chains that are no piece of a grid row: pieces on one line and one pitch lattice, a box or two missing between
    them (a cell whose faint line was lost), make one row, dropped with its pieces when longer than a number."""
    group = list(range(len(chains)))
    for i, a in enumerate(chains):
        for j, b in enumerate(chains):
            pitch = next((c[1].rect_mm[0] - c[0].rect_mm[0] for c in (a, b) if len(c) > 1), None)
            if i == j or pitch is None or not _same_line(a[-1], b[0]):
                continue
            steps = (b[0].rect_mm[0] - a[-1].rect_mm[0]) / pitch
            if round(steps) in (2, 3) and abs(steps - round(steps)) * pitch <= SAME_SIZE * a[-1].rect_mm[2]:
                old, new = group[j], group[i]
                group = [new if g == old else g for g in group]
    keep = []
    for i, chain in enumerate(chains):
        members = [chains[k] for k in range(len(chains)) if group[k] == group[i]]
        if len(members) > 1:
            pitch = next(c[1].rect_mm[0] - c[0].rect_mm[0] for c in members if len(c) > 1)
            xs = [b.rect_mm[0] for c in members for b in c]
            if round((max(xs) - min(xs)) / pitch) + 1 > RUN_LENGTHS[1]:
                continue
        keep.append(chain)
    return keep


def _split_at_pitch(chain: list[FoundBox]) -> list[list[FoundBox]]:
    """A chain cut at each gap wider than its narrowest by over a tenth of a box (two fields side by side)."""
    gaps = [b.rect_mm[0] - (a.rect_mm[0] + a.rect_mm[2]) for a, b in zip(chain, chain[1:])]
    usual = min(gaps, default=0.0)  # a number's own boxes are the closest: fields side by side are further apart
    out = [chain[:1]]
    for gap, b in zip(gaps, chain[1:]):
        if abs(gap - usual) > SAME_SIZE * b.rect_mm[2]:
            out.append([b])
        else:
            out[-1].append(b)
    return out


def regular_row(run: list[FoundBox]) -> tuple[RectMM, ...]:
    """Equal boxes at one pitch fitted to a run by least squares (x = x0 + i pitch; y, w, h their means)."""
    rects = np.array([b.rect_mm for b in run])
    i = np.arange(len(run))
    pitch, x0 = np.polyfit(i, rects[:, 0], 1)
    y, w, h = rects[:, 1].mean(), rects[:, 2].mean(), rects[:, 3].mean()
    return tuple((round(float(x0 + k * pitch), 2), round(float(y), 2), round(float(w), 2), round(float(h), 2))
                 for k in i)


def fields_in_reading_order(boxes: list[FoundBox]) -> list[tuple[int, int, list[FoundBox]]]:
    """(row, col, run) of every run of RUN_LENGTHS boxes: rows top to bottom, each left to right (1-based)."""
    numbers = [r for r in runs(boxes) if RUN_LENGTHS[0] <= len(r) <= RUN_LENGTHS[1]]
    middle = [r[0].rect_mm[1] + r[0].rect_mm[3] / 2 for r in numbers]
    out: list[tuple[int, int, list[FoundBox]]] = []
    row, row_top = 0, -np.inf
    row_runs: list[list[FoundBox]] = []
    for k in np.argsort(middle, kind="stable"):
        if middle[k] - row_top > 0.5 * numbers[k][0].rect_mm[3]:
            out += [(row, c, r) for c, r in enumerate(sorted(row_runs, key=lambda r: r[0].rect_mm[0]), start=1)]
            row, row_top, row_runs = row + 1, middle[k], []
        row_runs.append(numbers[k])
    out += [(row, c, r) for c, r in enumerate(sorted(row_runs, key=lambda r: r[0].rect_mm[0]), start=1)]
    return out


def fallback_id(row: int, col: int) -> str:
    return f"row_{row:02d}_col_{col}"


# Printed labels of KPU result forms and the ids the shipped templates give them; the most specific first.
KNOWN_LABELS = (
    (r"SAH\b.{0,6}\bDAN (SUARA )?TIDAK SAH", "suara_total"),  # a section letter may come between
    (r"SUARA TIDAK SAH", "suara_tidak_sah"),
    (r"SUARA SAH", "suara_sah"),
    (r"\bDPTB\b|DPT TAMBAHAN", "pengguna_dptb"),
    (r"\bDPK\b|DP KHUSUS", "pengguna_dpk"),
    (r"PENGGUNA HAK PILIH DALAM DPT", "pengguna_dpt"),
    (r"JUMLAH PENGGUNA HAK PILIH", "pengguna_total"),
    (r"DAFTAR PEMILIH TETAP", "dpt"),
    (r"DISABILITAS", "disabilitas"),
    (r"SURAT SUARA YANG DITERIMA", "surat_diterima"),
    (r"TIDAK DIGUNAKAN", "surat_sisa"),
    (r"DIKEMBALIKAN|RUSAK", "surat_rusak"),
    (r"YANG DIGUNAKAN", "surat_digunakan"),
)
# Tesseract reads the '+' of Pillow's font as '4', '-' or '#' now and then.
COLUMN_HEADINGS = ((r"JUMLAH|L\s*[+4#-]\s*P", "j"), (r"LAKI|\(L\)", "l"), (r"PEREMPUAN|\(P\)", "p"))


def id_for_label(label: str) -> str | None:
    """The id a known printed label names (`JUMLAH SUARA SAH` -> `suara_sah`, also as Tesseract reads a scan of 3 px/mm:
    `SUAPA SAH`), None for any other."""
    text = re.sub(r"\s+", " ", label.upper())
    return next((field_id for pattern, field_id in KNOWN_LABELS
                 if regex.search(_with_typos(pattern), text, flags=regex.BESTMATCH)), None)


def _with_typos(pattern: str) -> str:
    """Each alternative of `pattern` (KNOWN_LABELS: no '|' inside a group) allowed one misread letter in eight of its
    letters, at most two: a short one (DPTB) none."""
    return "|".join(f"(?:{alt}){{e<={min(2, len(re.sub(r'[^A-Z]', '', alt)) // 8)}}}" for alt in pattern.split("|"))


def column_letter(heading: str) -> str | None:
    """`l`, `p` or `j` for a column heading LAKI-LAKI (L), PEREMPUAN (P), JUMLAH (L+P); None for any other."""
    text = heading.upper()
    return next((letter for pattern, letter in COLUMN_HEADINGS if re.search(pattern, text)), None)

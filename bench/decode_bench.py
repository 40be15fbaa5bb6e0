"""Joint decoding benchmark: field accuracy, silent errors and review rate over synthetic submissions.

    python bench/decode_bench.py --count 1000 [--inconsistent 0.05] [--workers 2] [--data DIR] [--reads FILE]

Makes `--count` phone submissions with `formc synth` (templates in turn, seed 2024; a share
deliberately inconsistent as written), reads each with ocr/pipeline.py, and prints, with the rules
on and off and the tally marks weighed in or not: field accuracy of the emitted values, silently
wrong fields (value != truth while the field is ok/corrected and the submission ok), submissions
sent to review, and the share of the inconsistent ones sent to review; then the trade-off curve
over the `ok` margin, tally on and off. `--reads` keeps the reads (each field's probabilities,
candidates, tally counts and findings) in a pickle so that a policy is re-judged in seconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocr.pipeline import PhotoInput, ReaderSettings, read_pages  # noqa: E402
from ocr.reader.verdict import Policy, decode, judge  # noqa: E402
from ocr.synth.job import SynthJob, synthesize  # noqa: E402
from ocr.templates.catalog import get_template, load_templates  # noqa: E402

CURVE = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)  # ok margins of the trade-off curve (corrected = ok + 2)


def _read(folder: Path, second_look: bool = True) -> tuple[dict, object]:
    truth = json.loads((folder / "truth.json").read_text())
    photos = [PhotoInput(str(folder / name), (folder / name).read_bytes(), f"{i:064x}")
              for i, name in enumerate(truth["pages"].values())]
    read = read_pages(photos, tuple(load_templates().values()), ReaderSettings(second_look=second_look))
    for page in read.pages:
        page.alignment = page.photo = None  # the template and the 12 MP photo would be pickled once per page
    read.template = None
    return truth, read


def decoded(results: list, policy: Policy) -> list:
    """(weighed fields, joint result, ms) per submission: decoded once, judged under any policy whose margins are
    within `policy.margin_reach`; ms is the time the decoding under the rules took."""
    gc.freeze()  # the reads held here are a heap no reader has: collecting it would be timed as decoding
    out = []
    for truth, read in results:
        start = time.perf_counter()
        decoding = decode(get_template(truth["template"]), read.fields, policy) if read.fields else None
        out.append(decoding and (*decoding, 1000 * (time.perf_counter() - start)))
    return out


def decode_ms(joints: list) -> str:
    """Mean and max ms a submission spent decoding under the rules."""
    ms = [d[2] for d in joints if d is not None]
    return f"decoding under the rules: mean {sum(ms) / len(ms):.0f} ms, max {max(ms):.0f} ms a submission"


def evaluate(results: list, joints: list, policy: Policy) -> dict:
    fields = emitted = right = silent = review = 0
    inconsistent = inconsistent_review = 0
    for (truth, read), decoding in zip(results, joints):
        template = get_template(truth["template"])
        if decoding is None:
            review += 1
            continue
        verdict = judge(template, read.fields, decoding[1], policy, decoding[0])
        status = "rejected" if read.status == "rejected" else verdict.status
        review += status != "ok"
        if not truth["consistent"]:
            inconsistent += 1
            inconsistent_review += status != "ok"
        for field_id, v in verdict.fields.items():
            fields += 1
            if v.value is None:
                continue
            emitted += 1
            right += v.value == truth["fields"][field_id]
            silent += v.value != truth["fields"][field_id] and v.status in ("ok", "corrected") and status == "ok"
    return {"fields": fields, "accuracy": right / max(emitted, 1), "silent": silent / max(fields, 1),
            "silent_n": silent, "review": review / len(results), "inconsistent_review":
            inconsistent_review / max(inconsistent, 1), "inconsistent": inconsistent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--inconsistent", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("/tmp/formc-decode-bench"))
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--reads", type=Path, help="pickle of the reads: written after reading, reused when present")
    parser.add_argument("--no-second-look", dest="second_look", action="store_false",
                        help="read without the second look at a doubtful form's boxes (ReaderSettings.second_look)")
    args = parser.parse_args()
    ids = sorted(load_templates())
    per = {t: args.count // len(ids) + (i < args.count % len(ids)) for i, t in enumerate(ids)}
    start = time.perf_counter()
    folders = []
    for template_id, n in per.items():
        out = args.data / template_id
        if any(not (out / f"tps-{i:04d}" / "truth.json").exists() for i in range(1, n + 1)):  # made before, whole
            list(synthesize(SynthJob(template_id, n, out, seed=args.seed, profile="phone",
                                     inconsistent=args.inconsistent, workers=args.workers)))
        folders += [out / f"tps-{i:04d}" for i in range(1, n + 1)]
    made = time.perf_counter() - start
    start = time.perf_counter()
    if args.reads and args.reads.exists():
        results = pickle.loads(args.reads.read_bytes())
    else:
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_read, folders, [args.second_look] * len(folders), chunksize=4))
        if args.reads:
            args.reads.write_bytes(pickle.dumps(results))
    read_s = time.perf_counter() - start
    print(f"{len(results)} phone submissions ({sum(len(t['pages']) for t, _ in results)} photos), "
          f"{sum(not t['consistent'] for t, _ in results)} inconsistent as written; made in {made:.0f} s, "
          f"read in {read_s:.0f} s with {args.workers} workers")
    print("rules | tally marks | field accuracy (emitted) | silently wrong fields | submissions to review | "
          "inconsistent to review")
    channels = {(True, True): "on | on", (True, False): "on | off", (False, False): "off | off"}
    joints = {k: decoded(results, Policy(use_rules=k[0], use_tally=k[1])) for k in channels}
    print(decode_ms(joints[True, True]))
    widest = replace(Policy(), corrected_margin=max(CURVE) + 2)  # margins searched as far as the curve needs
    wide = {use_tally: decoded(results, replace(widest, use_tally=use_tally)) for use_tally in (True, False)}
    for (use_rules, use_tally), label in channels.items():
        m = evaluate(results, joints[use_rules, use_tally], Policy(use_rules=use_rules, use_tally=use_tally))
        print(f"{label} | {m['accuracy']:.4%} | {m['silent']:.4%} ({m['silent_n']} of "
              f"{m['fields']}) | {m['review']:.2%} | {m['inconsistent_review']:.1%} of {m['inconsistent']}")
    print("trade-off (rules on): ok margin | corrected margin | silently wrong, to review: tally on | tally off")
    for ok in CURVE:
        cells = []
        for use_tally in (True, False):
            m = evaluate(results, wide[use_tally],
                         replace(Policy(), ok_margin=ok, corrected_margin=ok + 2, use_tally=use_tally))
            cells.append(f"{m['silent_n']}, {m['review']:.2%}")
        print(f"{ok:.0f} | {ok + 2:.0f} | {' | '.join(cells)}")


if __name__ == "__main__":
    main()

"""The recapitulation (ocr/review/recap.py) on a real SQLite file: every level's totals are the sums of its TPS (a
property over random trees of real Kabupaten Bandung codes, reads, verifications and corrections), the verified and
machine columns differ exactly by the corrections, the TPS list's expected counts, refusals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from cli import main
from ocr.db.regions import RegionError, Regions
from ocr.db.store import ResultStore, default_url
from ocr.db.tables import CorrectionRow, ReviewRow, SubmissionRow, TpsCountRow
from ocr.record import FieldResult, SubmissionResult, TpsIdentity
from ocr.review.accounts import User, hash_password
from ocr.review.errors import ReviewError
from ocr.review.recap import LEVELS, next_problem, recap
from ocr.review.workflow import Reviews

# Two desa in each of two kecamatan of Kabupaten Bandung, one desa of Kota Bandung: a tree over three levels.
DESA = ("3204052001", "3204052002", "3204061001", "3204061002", "3273011001")
FIELDS = ("suara_paslon_1", "suara_paslon_2", "suara_sah", "dpt_j")


def result(n: int, desa: str, tps: int, status: str, values: dict[str, int | None]) -> SubmissionResult:
    fields = {f: FieldResult(value=v, confidence=1.0, status="ok", page=1) for f, v in values.items()}
    return SubmissionResult(submission=f"{desa}/TPS-{tps:03d}/{n}", photos_key=hashlib.sha256(str(n).encode()).hexdigest(),
                            template="kwk-bupati-2", status=status, pages=[], fields=fields,
                            place=TpsIdentity(desa=desa, tps=tps, election="bupati"))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[ResultStore]:
    with ResultStore(default_url(tmp_path_factory.mktemp("recap") / "results.db")) as store:
        yield store


@pytest.fixture(scope="module")
def reviewer(store) -> User:
    return Reviews(store).add_user("rina", "reviewer", hash_password("correct horse battery"))


def empty(store: ResultStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(delete(SubmissionRow))  # pages, fields, reviews, corrections go with them
        connection.execute(delete(TpsCountRow))


@dataclass
class Read:
    status: str
    values: dict[str, int | None]
    verified: bool
    corrections: dict[str, int | None]  # field -> newest value a reviewer gave


values = st.fixed_dictionaries({f: st.one_of(st.none(), st.integers(0, 999)) for f in FIELDS})
reads = st.builds(Read, st.sampled_from(["ok", "review", "rejected", "error"]), values, st.booleans(),
                  st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.none(), st.integers(0, 999)), max_size=2))
trees = st.dictionaries(st.tuples(st.sampled_from(DESA), st.integers(1, 3)), st.lists(reads, min_size=1, max_size=3),
                        max_size=10)


def fill(store: ResultStore, reviewer: User, tree: dict[tuple[str, int], list[Read]]) -> None:
    """Saves every read of every TPS, oldest first, with its review state and corrections (two each: the newest wins)."""
    n = 0
    for (desa, tps), tps_reads in tree.items():
        for read in tps_reads:
            n += 1
            store.save(result(n, desa, tps, read.status, read.values))
            sid = Reviews(store).id_of(f"{desa}/TPS-{tps:03d}/{n}", hashlib.sha256(str(n).encode()).hexdigest())
            with store.engine.begin() as connection:
                connection.execute(insert(ReviewRow).values(submission_id=sid, state="verified" if read.verified
                                                            else "open"))
                for f, v in read.corrections.items():
                    for new in (999, v):
                        connection.execute(insert(CorrectionRow).values(
                            submission_id=sid, field_id=f, old_value=read.values[f], new_value=new, reason="test",
                            user_id=reviewer.id))


def effective(read: Read) -> dict[str, int]:
    return {f: (read.corrections[f] if f in read.corrections else v) or 0 for f, v in read.values.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_every_level_totals_the_tps_inside_it(store, reviewer, tree):
    empty(store)
    fill(store, reviewer, tree)
    for level, digits in LEVELS.items():
        for code in ("", "32", "3204")[:1 + sum(1 for d in (2, 4) if d < digits)]:
            found = recap(store, Regions(store.engine), "bupati", level, code)
            for row in [*found.rows, found.total]:
                inside = {k: rs for k, rs in tree.items() if k[0].startswith(row.region.code if row.region.code
                                                                             else "")}
                if row is found.total:
                    inside = {k: rs for k, rs in tree.items() if k[0].startswith(code)}
                newest = [rs[-1] for rs in inside.values()]
                checked = [next(r for r in reversed(rs) if r.verified) for rs in inside.values()
                           if any(r.verified for r in rs)]
                assert row.tps.received == len(inside) and row.tps.verified == len(checked)
                assert row.tps.rejected == sum(1 for rs in inside.values() if not any(r.verified for r in rs)
                                               and rs[-1].status in ("rejected", "error"))
                for f in FIELDS:
                    assert row.machine.get(f, 0) == sum((r.values[f] or 0) for r in newest), (level, row.region, f)
                    assert row.verified.get(f, 0) == sum(effective(r)[f] for r in checked), (level, row.region, f)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_the_next_problem_walk_opens_every_unverified_tps_of_the_region_once_in_order(store, reviewer, tree):
    empty(store)
    fill(store, reviewer, tree)
    newest = {key: sum(len(rs) for rs in list(tree.values())[:at + 1]) for at, key in enumerate(tree)}  # read n
    for code in ("", "32", "3204", "320405", DESA[0]):
        walked, after = [], None
        while (found := next_problem(store, "bupati", code, after)) is not None:
            walked.append((found.desa, found.number))
            after = walked[-1]
            assert Reviews(store).view(found.submission).result.submission.endswith(f"/{newest[after]}")
        assert walked == sorted(key for key, rs in tree.items() if key[0].startswith(code)
                                and not any(r.verified for r in rs)), code
    assert next_problem(store, "gubernur") is None


def test_verified_and_machine_columns_differ_exactly_by_the_corrections(store, reviewer):
    empty(store)
    reviews = Reviews(store)
    for n, desa in enumerate(DESA[:3], start=1):
        store.save(result(n, desa, 1, "review", {"suara_paslon_1": 100 * n, "suara_paslon_2": 50, "suara_sah": 100 * n + 50}))
    ids = sorted(reviews.id_of(f"{d}/TPS-001/{n}", hashlib.sha256(str(n).encode()).hexdigest())
                 for n, d in enumerate(DESA[:3], start=1))
    reviews.correct(ids[0], reviewer, {"suara_paslon_1": 90, "suara_sah": 140}, "read 100, the sheet says 90")
    reviews.correct(ids[1], reviewer, {"suara_paslon_2": 55}, "the 0 is a 5")
    with store.engine.begin() as connection:
        connection.execute(insert(ReviewRow), [dict(submission_id=i, state="verified") for i in ids])
    found = recap(store, Regions(store.engine), "bupati", "kecamatan", "3204")
    assert found.columns == ["suara_paslon_1", "suara_paslon_2", "suara_sah", "suara_tidak_sah", "suara_total", "dpt_j",
                             "pengguna_total_j"]
    assert {c: found.total.verified[c] - found.total.machine[c] for c in found.columns} == {
        "suara_paslon_1": -10, "suara_paslon_2": 5, "suara_sah": -10, "suara_tidak_sah": 0, "suara_total": 0,
        "dpt_j": 0, "pengguna_total_j": 0}
    by_code = {r.region.code: r for r in found.rows}
    cileunyi, cimenyan = by_code["320405"], by_code["320406"]  # Cileunyi holds the first two desa
    assert (cileunyi.region.name, cileunyi.machine["suara_paslon_1"], cileunyi.verified["suara_paslon_1"]) == (
        "Cileunyi", 300, 290)
    assert cimenyan.verified == cimenyan.machine and by_code["320407"].machine == {}  # none read there: still a row


def test_expected_tps_come_from_the_imported_list_and_unknown_regions_are_refused(store):
    empty(store)
    store.save(result(1, DESA[0], 1, "ok", {"suara_sah": 10}))
    assert recap(store, Regions(store.engine), "bupati", "desa", "320405").total.tps.expected is None  # no list: unknown, not 0
    Regions(store.engine).load_tps_counts({DESA[0]: 7, DESA[1]: 5, DESA[2]: 9})
    found = recap(store, Regions(store.engine), "bupati", "desa", "320405")
    assert [(r.region.code, r.tps.expected, r.tps.received, r.tps.in_review) for r in found.rows[:2]] == [
        (DESA[0], 7, 1, 1), (DESA[1], 5, 0, 0)]
    assert found.total.tps.expected == 12 and [r.name for r in found.within] == [
        "Jawa Barat", "Kabupaten Bandung", "Cileunyi"]
    with pytest.raises(RegionError, match="3204059999"):
        Regions(store.engine).load_tps_counts({"3204059999": 3})
    with pytest.raises(ReviewError, match="not in the region registry"):
        recap(store, Regions(store.engine), "bupati", "desa", "3204059")
    with pytest.raises(ReviewError, match="not below"):
        recap(store, Regions(store.engine), "bupati", "kecamatan", "320405")


def test_the_cli_prints_the_recap_as_csv_and_json_and_imports_a_tps_list(store, tmp_path):
    empty(store)
    store.save(result(1, DESA[0], 1, "ok", {"suara_paslon_1": 40, "suara_sah": 60}))
    store.save(result(2, DESA[2], 4, "rejected", {"suara_paslon_1": 3}))
    url, runner = str(store.engine.url), CliRunner()
    listed = tmp_path / "tps.csv"
    listed.write_text("code,tps\n32.04.05.2001,7\n3204061001,4\n")
    assert runner.invoke(main, ["regions", "tps-import", str(listed), "--db", url]).exit_code == 0
    listed.write_text("code,tps\n3204059999,7\n")
    refused = runner.invoke(main, ["regions", "tps-import", str(listed), "--db", url])
    assert refused.exit_code == 1 and "3204059999" in refused.output
    shown = runner.invoke(main, ["recap", "--db", url, "--level", "kecamatan", "--election", "bupati",
                                 "--region", "32.04"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("code,name,tps_expected,tps_received,tps_verified,tps_in_review,tps_rejected,"
                               "verified_suara_paslon_1,")
    assert "320405,Cileunyi,7,1,0,1,0,0," in shown.output and lines[-1].startswith("3204,Kabupaten Bandung,11,2,0,1,1,")
    as_json = json.loads(runner.invoke(main, ["recap", "--db", url, "--level", "provinsi", "--election", "bupati",
                                              "--format", "json"]).output)
    west_java = next(r for r in as_json["rows"] if r["code"] == "32")
    assert (west_java["name"], west_java["tps"]["received"], west_java["machine"]["suara_paslon_1"],
            west_java["verified"]["suara_paslon_1"]) == ("Jawa Barat", 2, 43, 0)
    assert as_json["region"] is None and as_json["total"]["machine"]["suara_sah"] == 60
    unknown = runner.invoke(main, ["recap", "--db", url, "--level", "desa", "--election", "bupati", "--region", "12x"])
    assert unknown.exit_code == 2 and "no Kemendagri code" in unknown.output

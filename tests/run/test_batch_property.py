"""Random mixes of good and bad entries, in a folder or a zip, through a real `formc batch` with a database and
previews: one record per photo-bearing entry and a named line per other entry, the JSONL and the database hold the
same submissions, nothing is written outside the folders given, and a second run reads nothing again."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ocr.record import SubmissionResult
from tests.run.test_batch import SAMPLE, formc

JPEG = (SAMPLE / "page-1.jpg").read_bytes()
GOOD = ("good", "twin")  # the sample's three pages under a name of their own: later copies are duplicates
FOLDER_KINDS = (*GOOD, "page-1 only", "truncated", "empty", "text", "readme", "pipe", "dangling link",
                "loose beside folder", "not utf-8")
ZIP_KINDS = (*GOOD, "page-1 only", "truncated", "empty", "text", "readme", "loose beside folder", "damaged member",
             "mac metadata", "nested zip")
PAGE_CODES = {"truncated": "truncated", "empty": "empty_file", "text": "not_an_image", "damaged member": "file_unreadable"}


def _entry(root: Path, kind: str, name: str) -> tuple[list[str], list[str]]:
    """Writes one entry of `kind` under `root` (as files; the zip mode packs them): the submissions it must give
    and the names it must be skipped as."""
    if kind in (*GOOD, "page-1 only", "loose beside folder", "damaged member"):
        (root / name).mkdir()
        pages = ["page-1.jpg"] if kind in ("page-1 only", "damaged member") else ["page-1.jpg", "page-2.jpg", "page-3.jpg"]
        for page in pages[:1] if kind == "loose beside folder" else pages:
            (root / name / page).write_bytes((SAMPLE / page).read_bytes())
        if kind == "loose beside folder":  # a loose photo named like a TPS folder is a submission of its own
            (root / f"{name}.jpg").write_bytes((SAMPLE / "page-2.jpg").read_bytes())
            return [name, f"{name}.jpg"], []
        return [name], []
    files = {"truncated": JPEG[: len(JPEG) // 3], "empty": b"", "text": b"berita acara, bukan foto"}
    if kind in files:
        (root / f"{name}.jpg").write_bytes(files[kind])
        return [name], []
    if kind == "readme":
        (root / f"{name}.txt").write_text("catatan")
        return [], [f"{name}.txt"]
    if kind == "pipe":
        os.mkfifo(root / f"{name}.jpg")
        return [], [f"{name}.jpg"]
    if kind == "dangling link":
        (root / f"{name}.jpg").symlink_to(root / "nowhere.jpg")
        return [], [f"{name}.jpg"]
    if kind == "not utf-8":
        (root / os.fsdecode(f"{name}-".encode() + b"\xff.jpg")).write_bytes(JPEG)  # a byte that is not UTF-8
        return [f"{name}-\\xff"], []
    if kind == "mac metadata":
        (root / "__MACOSX" / name).mkdir(parents=True)
        (root / "__MACOSX" / name / "._page-1.jpg").write_bytes(b"\0\5\26\7")
        return [], ["__MACOSX/"]
    assert kind == "nested zip", kind
    with zipfile.ZipFile(root / f"{name}.zip", "w") as inner:
        inner.writestr("tps/page-1.jpg", JPEG)
    return [], [f"{name}.zip"]


def _zip(root: Path, archive: Path, damaged: list[str]) -> None:
    """Packs `root` into `archive`, members stored, then breaks the data of the `damaged` submissions' members."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(root).as_posix())
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if info.filename.split("/")[0] in damaged:  # a byte of its photo flipped: its CRC no longer holds
                start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
                data[start + info.file_size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))


def _outside(root: Path, out: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of everything under `root` but `out` and what it holds."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*") if not p.is_relative_to(out)}


# No shrinking: each example is two batches (seconds); a failing mix is reported as drawn.
@settings(max_examples=12, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow])
@given(as_zip=st.booleans(), data=st.data())
def test_any_mix_of_entries_gives_one_record_or_one_skipped_line_each(as_zip, data):
    kinds = data.draw(st.lists(st.sampled_from(ZIP_KINDS if as_zip else FOLDER_KINDS), min_size=1, max_size=7))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        entries, submissions, skipped = tmp / "entries", [], []
        entries.mkdir()
        for i, kind in enumerate(kinds):
            names = _entry(entries, kind, f"e{i}")
            submissions += names[0]
            skipped += names[1]
        skipped = list(dict.fromkeys(skipped))  # one line for all of __MACOSX/
        source = entries
        if as_zip:
            source = tmp / "upload.zip"
            _zip(entries, source, [f"e{i}" for i, kind in enumerate(kinds) if kind == "damaged member"])
            skipped = [f"upload.zip:{name}" for name in skipped]  # a member is named inside its zip
        out = tmp / "out"  # made by the batch, for the JSONL and the database alike
        before = _outside(tmp, out)
        args = ("batch", str(source), "--out", str(out / "results.jsonl"), "--workers", "2",
                "--db", f"sqlite:///{out / 'results.db'}", "--previews", str(out / "previews"))
        run = formc(*args)
        assert run.returncode == 0, run.stderr

        lines = (out / "results.jsonl").read_text().splitlines()
        results = [SubmissionResult.model_validate_json(line) for line in lines]
        assert Counter(r.submission for r in results) == Counter(submissions), run.stderr
        for name in skipped:
            assert f"skipped {name}:" in run.stderr, run.stderr
        assert f"{len(results)} submissions read" in run.stderr
        assert len({(r.submission, r.photos_key) for r in results}) == len(results)
        by_name = {r.submission: r for r in results}
        for i, kind in enumerate(kinds):
            result = by_name.get(f"e{i}")
            if kind == "page-1 only":
                assert result.status == "incomplete"
                assert [str(r) for r in result.reasons if r.code == "missing_page"] == ["missing_page: 2", "missing_page: 3"]
            if kind in PAGE_CODES:
                assert PAGE_CODES[kind] in [e.code for p in result.pages for e in p.errors], result
            if kind in GOOD:
                assert result.status in ("ok", "review")
        firsts: dict[str, str] = {}  # photos_key -> the first submission written with those photos
        for r in results:
            first = firsts.setdefault(r.photos_key, r.submission)
            twin = [str(reason) for reason in r.reasons if reason.code == "duplicate_photos"]
            assert twin == ([f"duplicate_photos: {first}"] if first != r.submission and any(p.sha256 for p in r.pages)
                            else []), r.submission
            assert r.status != "ok" or not twin
        with sqlite3.connect(out / "results.db") as db:
            rows = db.execute("SELECT submission, photos_key, status FROM submissions").fetchall()
        assert sorted(rows) == sorted((r.submission, r.photos_key, r.status) for r in results)

        assert _outside(tmp, out) == before  # the input untouched, nothing written beside `out`
        again = formc(*args)
        assert again.returncode == 0 and "0 submissions read" in again.stderr, again.stderr
        assert (out / "results.jsonl").read_text().splitlines() == lines

"""What `formc batch` finds in INPUT: every entry a photo of one submission or a named skipped line, whatever it is
(special files, links, unlistable folders, odd names, damaged zips, spreadsheet manifests), and names kept inside
the folders they become."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocr.eval.score import evaluate_results
from ocr.reader.decode import Photo, decode_photo
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.record import SubmissionResult, error_result
from ocr.run import inputs
from ocr.run.inputs import PHOTO_SUFFIXES, PhotoRef, find_submissions, submission_folder

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "kwk-gubernur-3" / "tps-0001"


@pytest.fixture(autouse=True)
def no_hang():
    """A FIFO opened for reading blocks for ever: a test that does so fails after 60 s instead."""
    def hung(*_):
        raise TimeoutError("blocked: something was opened that never answers")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def layout(found) -> dict[str, list[str]]:
    return {s.submission: s.sources for s in found.submissions}


def skipped(found) -> dict[str, str]:
    return {s.name: s.why for s in found.skipped}


def refusal(ref: PhotoRef) -> Refusal:
    data = ref.load().data
    assert isinstance(data, Refusal), f"{ref.source} was read"
    return data


def test_special_files_and_links_are_named_lines_and_never_opened(tmp_path):
    (tmp_path / "tps-1").mkdir()
    (tmp_path / "tps-1" / "p.jpg").write_bytes(b"photo")
    os.mkfifo(tmp_path / "tps-1" / "pipe.jpg")
    (tmp_path / "tps-1" / "linked.jpg").symlink_to(tmp_path / "tps-1" / "p.jpg")  # a link to a photo is read
    (tmp_path / "tps-1" / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "tps-1" / "to-pipe.jpg").symlink_to(tmp_path / "tps-1" / "pipe.jpg")
    (tmp_path / "tps-1" / "self.jpg").symlink_to(tmp_path / "tps-1" / "self.jpg")
    (tmp_path / "tps-1" / "loop").symlink_to(tmp_path)  # a folder link back up: never walked
    sock = socket.socket(socket.AF_UNIX)
    os.chdir(tmp_path)  # a socket's path is limited to 108 bytes: bound by its short relative name
    sock.bind("tps-1/sock.jpg")
    found = find_submissions(tmp_path)
    sock.close()
    assert layout(found) == {"tps-1": ["tps-1/linked.jpg", "tps-1/p.jpg"]}
    assert skipped(found) == {
        "tps-1/dangling.jpg": "a link that leads to no file (No such file or directory)",
        "tps-1/loop": "a link to a folder, not followed",
        "tps-1/pipe.jpg": "a named pipe (FIFO), not a file: not opened",
        "tps-1/self.jpg": "a link that leads to no file (Too many levels of symbolic links)",
        "tps-1/sock.jpg": "a socket, not a file: not opened",
        "tps-1/to-pipe.jpg": "a named pipe (FIFO), not a file: not opened"}
    assert [ref.load().data for ref in found.submissions[0].photos] == [b"photo", b"photo"]
    # Named in a manifest (or made a pipe after the listing), a pipe or a device is refused, not read.
    for path in (tmp_path / "tps-1" / "pipe.jpg", Path("/dev/zero")):
        why = refusal(PhotoRef(path.name, str(path)))
        assert why.code == "file_unreadable" and "not a file" in why.message


def test_a_folder_that_cannot_be_listed_is_a_named_line_and_the_rest_is_read(tmp_path, monkeypatch):
    for tps in ("tps-1", "tps-2"):
        (tmp_path / tps).mkdir()
        (tmp_path / tps / "p.jpg").write_bytes(b"photo")
    locked = tmp_path / "tps-2"
    if os.geteuid() == 0:  # root lists a chmod 000 folder: the kernel's refusal is simulated where os.walk lists
        scandir = os.scandir
        monkeypatch.setattr(os, "scandir", lambda path=".": scandir(path) if Path(path) != locked else (
            _ for _ in ()).throw(PermissionError(13, "Permission denied", str(path))))
    else:
        locked.chmod(0)
    try:
        found = find_submissions(tmp_path)
    finally:
        locked.chmod(0o755)
    assert layout(found) == {"tps-1": ["tps-1/p.jpg"]}
    assert skipped(found) == {"tps-2/": "folder cannot be listed (Permission denied): its photos are not read"}


def test_names_that_are_not_utf8_are_kept_readable_and_their_files_read(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"tps-\xe9")
    os.mkdir(folder)
    with open(os.path.join(folder, b"p\xff.jpg"), "wb") as f:
        f.write(b"photo")
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"), "wb") as f:
        f.write(b"loose")
    found = find_submissions(tmp_path)
    assert layout(found) == {"caf\\xe9": ["caf\\xe9.jpg"], "tps-\\xe9": ["tps-\\xe9/p\\xff.jpg"]}
    assert [s.photos[0].load().data for s in found.submissions] == [b"loose", b"photo"]
    for sub in found.submissions:  # valid text: JSON and a database take it as it is
        assert json.loads(json.dumps(sub.submission, ensure_ascii=False)) == sub.submission
        sub.submission.encode("utf-8")


def _member_offsets(data: bytes, index: int) -> tuple[int, int]:
    """(local header, central directory entry) offsets of the zip's `index`-th member."""
    local = zipfile.ZipFile(io.BytesIO(data)).infolist()[index].header_offset
    central = data.index(b"PK\x01\x02")
    for _ in range(index):
        name, extra, comment = struct.unpack("<HHH", data[central + 28:central + 34])
        central += 46 + name + extra + comment
    return local, central


def _damaged_zip(path: Path) -> None:
    """A zip with one good member and one of each way a member can be unreadable."""
    noise = np.random.default_rng(0).integers(0, 255, 5000, np.uint8).tobytes()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("good/p.jpg", b"photo")
        z.writestr("crc/p.jpg", noise)  # stored: a flipped byte changes the data, not the CRC of the header
        z.writestr("deflate/p.jpg", noise + bytes(20000), compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("method/p.jpg", b"photo")
    data = bytearray(path.read_bytes())
    infos = zipfile.ZipFile(path).infolist()
    start = lambda i: infos[i].header_offset + 30 + len(infos[i].filename) + len(infos[i].extra)  # noqa: E731
    data[start(1) + 100] ^= 0xFF
    data[start(2) + 10:start(2) + 40] = bytes(30)  # the deflate stream broken in its first block
    local, central = _member_offsets(bytes(data), 3)
    data[local + 8:local + 10] = data[central + 10:central + 12] = struct.pack("<H", 99)  # AES: not in zipfile
    path.write_bytes(bytes(data))


def test_damaged_encrypted_and_unsupported_zip_members_are_refused_photos(tmp_path):
    archive = tmp_path / "upload.zip"
    _damaged_zip(archive)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "p.jpg").write_bytes(b"photo")
    if shutil.which("zip"):  # a real password-protected zip, else the flag bit such a zip sets
        subprocess.run(["zip", "-q", "-P", "secret", str(archive), "secret/p.jpg"], cwd=tmp_path, check=True)
    else:
        with zipfile.ZipFile(archive, "a") as z:
            z.writestr("secret/p.jpg", b"photo")
        data = bytearray(archive.read_bytes())
        local, central = _member_offsets(bytes(data), 4)
        data[local + 6] |= 1
        data[central + 8] |= 1
        archive.write_bytes(bytes(data))
    found = find_submissions(archive)
    assert list(layout(found)) == ["crc", "deflate", "good", "method", "secret"]
    refs = {s.submission: s.photos[0] for s in found.submissions}
    assert refs["good"].load().data == b"photo"
    messages = {name: refusal(ref) for name, ref in refs.items() if name != "good"}
    assert {why.code for why in messages.values()} == {"file_unreadable"}
    assert "damaged in its zip (Bad CRC-32" in messages["crc"].message
    assert "damaged in its zip" in messages["deflate"].message and "download the zip again" in messages["deflate"].message
    assert "zip the photos again with the usual method" in messages["method"].message
    assert "encrypted" in messages["secret"].message and "without a password" in messages["secret"].message


def test_reading_is_bounded_whatever_the_entry_claims(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_PHOTO_BYTES", 1000)
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big/p.jpg", bytes(5000))
        z.writestr("liar/p.jpg", bytes(10**6))  # a bomb whose header claims 500 bytes
    data = bytearray(archive.read_bytes())
    local, central = _member_offsets(bytes(data), 1)
    data[local + 22:local + 26] = data[central + 24:central + 28] = struct.pack("<I", 500)
    archive.write_bytes(bytes(data))
    (tmp_path / "big.jpg").write_bytes(bytes(5000))
    big, liar = (s.photos[0] for s in find_submissions(archive).submissions)
    for ref in (big, PhotoRef("big.jpg", str(tmp_path / "big.jpg"))):
        assert refusal(ref).code == "image_too_large"
    assert refusal(liar).code == "file_unreadable"  # 500 bytes read, whose CRC is not the header's


def test_zip_duplicates_metadata_and_nested_archives(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("tps-1/p.jpg", b"first")
        z.writestr("tps-1/p.jpg", b"second")
        z.writestr("__MACOSX/tps-1/._p.jpg", b"resource fork")
        z.writestr("__MACOSX/._tps-1", b"resource fork")
        z.writestr("tps-1/._p.jpg", b"AppleDouble")
        z.writestr("tps-1/.DS_Store", b"finder")
        z.writestr("Thumbs.db", b"explorer")
        z.writestr("tps-1/desktop.ini", b"explorer")
        z.writestr("inner.zip", b"PK")
        z.writestr("tps-2\\p.jpg", b"windows")  # made on Windows: the backslash separates folders
    found = find_submissions(archive)
    assert layout(found) == {"tps-1": ["upload.zip:tps-1/p.jpg", "upload.zip:tps-1/p.jpg (duplicate 2)"],
                             "tps-2": ["upload.zip:tps-2\\p.jpg"]}
    assert [ref.load().data for ref in found.submissions[0].photos] == [b"first", b"second"]
    assert skipped(found) == {
        "upload.zip:__MACOSX/": "macOS metadata (2 files), not photos",
        "upload.zip:tps-1/._p.jpg": "metadata of the operating system, not a photo",
        "upload.zip:tps-1/.DS_Store": "metadata of the operating system, not a photo",
        "upload.zip:Thumbs.db": "metadata of the operating system, not a photo",
        "upload.zip:tps-1/desktop.ini": "metadata of the operating system, not a photo",
        "upload.zip:inner.zip": "an archive inside INPUT is not read: give it to formc batch on its own"}


def test_photo_suffixes_are_the_photo_formats_the_decoder_reads():
    extensions = Image.registered_extensions()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), np.uint8)).convert("RGB")
    for suffix in sorted(PHOTO_SUFFIXES):
        saved = io.BytesIO()
        image.save(saved, format=extensions[suffix])
        assert isinstance(decode_photo(saved.getvalue(), f"p{suffix}"), Photo), suffix
    assert {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp", ".gif"} <= PHOTO_SUFFIXES
    assert not {".eps", ".psd", ".ico", ".pdf", ".txt", ".json", ".zip"} & PHOTO_SUFFIXES


def test_loose_photos_never_merge_with_a_folder_or_each_other(tmp_path):
    for name in ("x/p.jpg", "x.jpg", "y.jpg", "y.png", "z.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"photo")
    assert layout(find_submissions(tmp_path)) == {"x": ["x/p.jpg"], "x.jpg": ["x.jpg"], "y.jpg": ["y.jpg"],
                                                  "y.png": ["y.png"], "z": ["z.jpg"]}
    archive = tmp_path / "upload.zip"  # in a zip a file and a folder may share a name too
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("x/p.jpg", "x.jpg/p.jpg", "x.jpg"):
            z.writestr(name, b"photo")
    assert layout(find_submissions(archive)) == {"x": ["upload.zip:x/p.jpg"], "x.jpg": ["upload.zip:x.jpg/p.jpg"],
                                                 "x.jpg#2": ["upload.zip:x.jpg"]}


@pytest.mark.parametrize("encoding, delimiter", [("utf-8-sig", ","), ("utf-16", "\t"), ("cp1252", ";"), ("utf-8", ";")])
def test_manifests_as_spreadsheets_write_them(tmp_path, encoding, delimiter):
    (tmp_path / "Café").mkdir()
    (tmp_path / "Café" / "p1.jpg").write_bytes(b"page 1")
    rows = [["submission", "path", "note"], ["Kec. Café/tps-1", "Café/p1.jpg", "é"], ["Kec. Café/tps-1", "missing.jpg", ""],
            ["Kec. Café/tps-1", "Café/p1.jpg", "again"], ["", "", ""], ["tps-2", "", ""]]
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes("\r\n".join(delimiter.join(row) for row in rows).encode(encoding))
    found = find_submissions(manifest)
    assert layout(found) == {"Kec. Café/tps-1": ["Café/p1.jpg", "missing.jpg"]}
    first, missing = found.submissions[0].photos
    assert first.load().data == b"page 1" and refusal(missing).code == "file_unreadable"
    assert skipped(found) == {"manifest.csv:4": "repeats line 2: read once",
                              "manifest.csv:6": "a row without a submission or a path"}


NAMES = ["../../x", "/abs/path", "a/../../b", "..", ".", "", "a\x00b", "..\\..\\w", "x" * 300, "\udce9", "a/./b//c"]


def test_a_submission_folder_is_inside_its_root_whatever_the_name(tmp_path):
    root = tmp_path / "previews"
    for name in NAMES:
        folder = submission_folder(root, name)
        assert folder != root and os.path.realpath(folder).startswith(f"{root}/"), name
        folder.mkdir(parents=True, exist_ok=True)  # a name the file system takes
    assert submission_folder(root, "kab-x/tps-0001") == root / "kab-x" / "tps-0001"
    assert submission_folder(root, "../../x") == root / "__" / "__" / "x"


def test_eval_reads_no_truth_outside_its_folder(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "truth.json").write_text("not the truth of this batch")
    (tmp_path / "truth").mkdir()
    names = ["../outside", str(tmp_path / "outside")]
    results = [error_result(name, ["p.jpg"], [""], ReasonCode.INTERNAL_ERROR, "-") for name in names]
    assert evaluate_results(results, tmp_path / "truth").without_truth == names


def formc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_batch_on_a_hostile_zip_reads_the_good_and_names_the_rest(tmp_path):
    clean, hostile = tmp_path / "clean.zip", tmp_path / "hostile.zip"
    with zipfile.ZipFile(clean, "w") as z:
        for page in sorted(SAMPLE.glob("page-*.jpg")):
            z.write(page, f"kab/tps-good/{page.name}")
    shutil.copy(clean, hostile)
    page = (SAMPLE / "page-3.jpg").read_bytes()
    with zipfile.ZipFile(hostile, "a") as z:
        z.writestr("../../escape/p.jpg", page)
        z.writestr("a/../../../b/p.jpg", b"not a photo")
        z.writestr("/abs/path/p.jpg", b"not a photo")
        z.writestr("..\\..\\w\\p.jpg", b"not a photo")
        z.writestr("tps-crc/p.jpg", page)
        z.writestr("__MACOSX/kab/tps-good/._page-1.jpg", b"resource fork")
        z.writestr("kab/tps-good/.DS_Store", b"finder")
        z.writestr("inner.zip", b"PK")
    data = bytearray(hostile.read_bytes())
    info = zipfile.ZipFile(hostile).infolist()[7]
    data[info.header_offset + 30 + len(info.filename) + 5000] ^= 0xFF
    hostile.write_bytes(bytes(data))
    work = tmp_path / "work"
    work.mkdir()
    before = _files(tmp_path.parent)
    out, previews = work / "results.jsonl", work / "previews"
    run = formc("batch", str(hostile), "--out", str(out), "--previews", str(previews), "--workers", "1")
    assert run.returncode == 0, run.stderr
    lines = out.read_text().splitlines()
    by_name = {r.submission: r for r in map(SubmissionResult.model_validate_json, lines)}
    assert len(lines) == len(by_name) == 6
    assert sorted(by_name) == ["../../escape", "../../w", "/abs/path", "a/../../../b", "kab/tps-good", "tps-crc"]
    (error,) = by_name["tps-crc"].pages[0].errors
    assert error.code == "file_unreadable" and "damaged in its zip" in error.message
    assert by_name["../../escape"].pages[0].errors == [] and by_name["a/../../../b"].status == "rejected"
    for line in ("skipped hostile.zip:__MACOSX/: macOS metadata (1 files), not photos",
                 "skipped hostile.zip:kab/tps-good/.DS_Store: metadata of the operating system, not a photo",
                 "skipped hostile.zip:inner.zip: an archive inside INPUT is not read"):
        assert line in run.stderr
    written = _files(tmp_path.parent) - before
    assert all(p.is_relative_to(previews) or p.parent == work for p in written), sorted(written)
    assert (previews / "__" / "__" / "escape").is_dir()
    again = formc("batch", str(clean), "--out", str(work / "clean.jsonl"), "--workers", "1")
    assert again.returncode == 0, again.stderr
    (alone,) = map(SubmissionResult.model_validate_json, (work / "clean.jsonl").read_text().splitlines())
    good = by_name["kab/tps-good"]
    assert (good.status, good.fields) == (alone.status, alone.fields) and len(good.pages) == 3


def test_batch_on_a_folder_of_odd_entries_writes_one_record_each_and_names_the_rest(tmp_path):
    inbox, out = tmp_path / "in", tmp_path / "results.jsonl"
    (inbox / "x").mkdir(parents=True)
    (inbox / "x" / "notes.jpg").write_text("not a photo")
    (inbox / "x.jpg").write_text("not a photo either")
    os.mkfifo(inbox / "x" / "pipe.jpg")
    (inbox / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")
    with open(os.path.join(os.fsencode(inbox), b"caf\xe9.jpg"), "wb") as f:
        f.write(b"latin-1 name")
    run = formc("batch", str(inbox), "--out", str(out), "--workers", "1")
    assert run.returncode == 0, run.stderr
    lines = out.read_text().splitlines()
    assert sorted(SubmissionResult.model_validate_json(line).submission for line in lines) == ["caf\\xe9", "x", "x.jpg"]
    assert "skipped x/pipe.jpg: a named pipe (FIFO), not a file: not opened" in run.stderr
    assert "skipped gone.jpg: a link that leads to no file" in run.stderr

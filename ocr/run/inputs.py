"""What a batch reads: submissions (the photos of one TPS) found in a folder, a zip or a CSV manifest.

Every entry INPUT holds ends as a photo of one submission or as a `Skipped` line (its name and why),
never silently dropped and never read twice:
- Folder: every folder below INPUT that holds photos is one submission, named by its path relative
  to INPUT (`kab-x/tps-0001`). Photos loose in INPUT itself are one submission each, named by their
  stem (`x.jpg` -> `x`); when that name is taken (a folder `x/`, or `x.jpg` beside `x.png`) by the
  file name (`x.jpg`), and when that is taken too by the file name and a number (`x.jpg#2`): two
  entries are never merged into one submission.
- Zip: the same rules over the member paths (`\\` counts as `/`: zips made on Windows). A damaged,
  encrypted or unsupported member is a refused photo (`file_unreadable`) of its submission; members
  that share a name are each read (the later ones' source says `(duplicate n)`); a zip inside the
  zip is skipped, not read (give it to `formc batch` on its own).
- CSV manifest: rows of `submission,path` (a header line with those names, other columns ignored);
  rows with the same submission are its photos; relative paths are relative to the manifest's folder.
  Columns `kode_wilayah,tps,pemilihan` name where a submission belongs (its first row that fills them).
  Whatever a spreadsheet writes is read: UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252;
  `,`, `;` or tab between cells (the one that splits the header). A path that does not exist is a
  refused photo; a row that repeats one above is skipped.
- Skipped, named: files that are not photos by name, OS metadata (`__MACOSX/`, `._x.jpg`,
  `.DS_Store`, `Thumbs.db`, `desktop.ini`), named pipes, sockets and devices (never opened: a pipe
  blocks for ever), links to nothing or to something not a file, links to folders (not followed:
  no loops), folders that cannot be listed.

Photos are recognised by name (`PHOTO_SUFFIXES`: the formats the decoder reads that a camera, phone or
scanner writes; a text file named .jpg is still taken, and refused by the decoder with `not_an_image`).
Names that are not valid UTF-8 are reported with their odd bytes as `\\xNN`. Bytes are read by the
worker that reads the photo, so the main process never holds them, and never more than
`MAX_PHOTO_BYTES` + 1 of them whatever the file or the zip claims.
A submission's name becomes a path only through `submission_folder`, which keeps it inside its root.
A submission's place (TPS identity) comes from the manifest's columns or a folder path `<kode kelurahan>/TPS-001`
(`ocr/run/places.py`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import lzma
import os
import stat
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image

from ocr.pipeline import PhotoInput
from ocr.reader.decode import PHOTO_FORMATS
from ocr.reader.reasons import ReasonCode, Refusal
from ocr.run.places import Place, from_folder, from_manifest

# Photos by name: Pillow's own extensions for the formats the decoder opens.
PHOTO_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in PHOTO_FORMATS)
MAX_PHOTO_BYTES = 64 * 1024 * 1024  # a 12 MP JPEG is 3-8 MB; larger is not a phone photo (and not read into memory)
ARCHIVE_SUFFIXES = frozenset({".zip", ".rar", ".7z", ".tar", ".gz", ".tgz"})
OS_METADATA = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
# What reading a damaged zip member raises (bad CRC, a cut or corrupt deflate/LZMA stream, headers that disagree).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError, ValueError)
_NAME_MAX = 255  # bytes in one file name (Linux, macOS)


class InputError(ValueError):
    """INPUT itself cannot be used (missing, not a folder/zip/CSV, malformed manifest)."""


def readable(name: str) -> str:
    """`name` as valid text: bytes of a file name that are not UTF-8 (surrogate escapes) become `\\xNN`."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def submission_folder(root: Path, submission: str) -> Path:
    """The folder under `root` for `submission`'s files, strictly inside `root` whatever the name: `/`, `\\` separate
    folders, empty and `.` parts are dropped, `..` becomes `__`, control characters `_`; `kab-x/tps-0001` is kept."""
    parts = []
    for part in submission.replace("\\", "/").split("/"):
        part = "".join("_" if ord(c) < 32 else c for c in part.encode("utf-8", "backslashreplace").decode())
        if part in ("", "."):
            continue
        part = "__" if part == ".." else part
        if len(part.encode()) > _NAME_MAX:  # too long for a file name: cut, kept apart by the hash of the whole
            part = part.encode()[:200].decode("utf-8", "ignore") + "~" + hashlib.sha256(part.encode()).hexdigest()[:16]
        parts.append(part)
    return root.joinpath(*parts) if parts else root / "_"


@dataclass(frozen=True)
class PhotoRef:
    """One photo: a file on disk, or a member of a zip (`archive` set, `path` the member name, `member` its position
    among the zip's members: two may share a name)."""

    source: str  # the name reported in results
    path: str
    archive: str | None = None
    sha256: str = ""  # known already (a file of the content-addressed photo store, named by it): not hashed again
    member: int | None = None

    def read_bytes(self) -> bytes | Refusal:
        """The photo's bytes, or why they cannot be had; raises what opening the file or the zip member raises."""
        if self.archive is None:
            # Opened without waiting (a named pipe would block for ever), then read only if it is a regular file.
            with os.fdopen(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY), "rb") as stream:
                mode = os.fstat(stream.fileno())
                if not stat.S_ISREG(mode.st_mode):
                    return Refusal(ReasonCode.FILE_UNREADABLE, f"{self.source} is {_kind(mode.st_mode)}, not a file: "
                                   "give the photo file itself")
                return self._bounded(stream, mode.st_size)
        with zipfile.ZipFile(self.archive) as z:
            info = z.infolist()[self.member] if self.member is not None else z.getinfo(self.path)
            if info.flag_bits & 0x1:
                return Refusal(ReasonCode.FILE_UNREADABLE, f"{self.source} is encrypted (a zip with a password): zip "
                               "the photos again without a password")
            with z.open(info) as stream:
                return self._bounded(stream, info.file_size)

    def _bounded(self, stream: BinaryIO, claimed: int) -> bytes | Refusal:
        """At most `MAX_PHOTO_BYTES` from `stream`, whatever size the file or the zip header claims."""
        data = stream.read(MAX_PHOTO_BYTES + 1) if claimed <= MAX_PHOTO_BYTES else b""
        if claimed > MAX_PHOTO_BYTES or len(data) > MAX_PHOTO_BYTES:
            return Refusal(ReasonCode.IMAGE_TOO_LARGE, f"{self.source}: over {MAX_PHOTO_BYTES // 2**20} MB; a photo of "
                           "a form is smaller: send the camera's original JPEG")
        return data

    def load(self) -> PhotoInput:
        """The photo's bytes and their sha256 (the one place a photo is hashed, unless its hash is known), or why the
        file cannot be read."""
        try:
            data = self.read_bytes()
        except (OSError, KeyError, IndexError) as exc:  # Key/IndexError: a zip member that vanished
            return PhotoInput(self.source, Refusal(ReasonCode.FILE_UNREADABLE, f"{self.source}: cannot be read ({exc})"))
        except NotImplementedError as exc:
            return PhotoInput(self.source, Refusal(ReasonCode.FILE_UNREADABLE, f"{self.source}: {exc} in this zip: zip "
                                                   "the photos again with the usual method (deflate)"))
        except _ZIP_ERRORS as exc:
            return PhotoInput(self.source, Refusal(ReasonCode.FILE_UNREADABLE, f"{self.source} is damaged in its zip "
                                                   f"({exc}): copy or download the zip again"))
        if isinstance(data, Refusal):
            return PhotoInput(self.source, data)
        return PhotoInput(self.source, data, self.sha256 or hashlib.sha256(data).hexdigest())


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


@dataclass(frozen=True)
class SubmissionInput:
    submission: str
    photos: tuple[PhotoRef, ...]
    place: Place = None  # where it belongs, or why that cannot be read

    @property
    def sources(self) -> list[str]:
        return [ref.source for ref in self.photos]


@dataclass(frozen=True)
class Skipped:
    """An entry of INPUT that is not read, and why (each is a line of the batch's summary)."""

    name: str
    why: str


@dataclass(frozen=True)
class FoundInputs:
    submissions: list[SubmissionInput]
    skipped: list[Skipped]

    @property
    def photo_count(self) -> int:
        return sum(len(s.photos) for s in self.submissions)


def _is_photo(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in PHOTO_SUFFIXES


def _not_a_photo(name: str) -> str | None:
    """Why a file named `name` (posix, relative) is not read as a photo; None when it is a photo by name."""
    path = PurePosixPath(name)
    if path.name.lower() in OS_METADATA or path.name.startswith("._"):
        return "metadata of the operating system, not a photo"
    if path.suffix.lower() in ARCHIVE_SUFFIXES:
        return "an archive inside INPUT is not read: give it to formc batch on its own"
    if not _is_photo(name):
        return "not a photo by name"
    return None


def _unique(candidates: list[str], taken: set[str]) -> str:
    """The first candidate not in `taken`, else the last one numbered (`x.jpg#2`); added to `taken`."""
    choice = next((c for c in candidates if c not in taken), None)
    if choice is None:
        choice = next(n for n in (f"{candidates[-1]}#{i}" for i in itertools.count(2)) if n not in taken)
    taken.add(choice)
    return choice


def _group(photos: list[tuple[str, PhotoRef]], election: str | None) -> list[SubmissionInput]:
    """Photos by their relative (posix, readable) names grouped into submissions by the folder rules, in name order;
    a folder `<kode kelurahan>/TPS-001` is that TPS in `election`."""
    folders: dict[str, list[PhotoRef]] = defaultdict(list)
    loose = []
    for name, ref in sorted(photos, key=lambda p: (p[0], p[1].source)):
        parent = str(PurePosixPath(name).parent)
        if parent == ".":
            loose.append((name, ref))
        else:
            folders[parent].append(ref)
    taken = set(folders)
    stems = Counter(PurePosixPath(name).stem for name, _ in loose)
    named = {}
    for name, ref in loose:  # a stem shared by two loose photos names neither: `x.jpg` and `x.png`, not `x` twice
        stem = PurePosixPath(name).stem
        named[_unique([stem, name] if stems[stem] == 1 else [name], taken)] = [ref]
    return [SubmissionInput(sub, tuple(refs), from_folder(sub, election) if sub in folders else None)
            for sub, refs in sorted({**folders, **named}.items())]


def _walk(root: Path) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """Every regular file below `root` (or link to one) by relative posix name, and the entries that are not."""
    files, skipped = [], []

    def unlisted(exc: OSError) -> None:
        name = readable(Path(exc.filename).relative_to(root).as_posix()) + "/"
        skipped.append(Skipped(name, f"folder cannot be listed ({exc.strerror}): its photos are not read"))

    for folder, subfolders, names in os.walk(root, onerror=unlisted):
        here = Path(folder)
        for sub in subfolders:  # os.walk does not follow links to folders: said so, not silently
            if (here / sub).is_symlink():
                skipped.append(Skipped(readable((here / sub).relative_to(root).as_posix()),
                                       "a link to a folder, not followed"))
        for name in names:
            path = here / name
            relative = readable(path.relative_to(root).as_posix())
            try:
                mode = path.stat().st_mode
            except OSError as exc:  # a link to nothing, or a loop of links
                skipped.append(Skipped(relative, f"a link that leads to no file ({exc.strerror})"))
                continue
            if stat.S_ISREG(mode):
                files.append((relative, path))
            else:
                skipped.append(Skipped(relative, f"{_kind(mode)}, not a file: not opened"))
    return files, skipped


def _photos(entries: list[tuple[str, str, PhotoRef]], election: str | None, prefix: str = ""
            ) -> tuple[list[SubmissionInput], list[Skipped]]:
    """(name, reported name, ref) of every file grouped into submissions; those that are not photos skipped (the
    `__MACOSX/` folder a Mac adds beside every file as one line, `prefix` before its name)."""
    photos, skipped, macosx = [], [], []
    for name, reported, ref in entries:
        if name.split("/")[0] == "__MACOSX":
            macosx.append(reported)
        elif (why := _not_a_photo(name)) is not None:
            skipped.append(Skipped(reported, why))
        else:
            photos.append((name, ref))
    if macosx:
        skipped.append(Skipped(f"{prefix}__MACOSX/", f"macOS metadata ({len(macosx)} files), not photos"))
    return _group(photos, election), skipped


def _from_folder(root: Path, election: str | None) -> FoundInputs:
    files, unread = _walk(root)
    submissions, skipped = _photos([(name, name, PhotoRef(name, str(path))) for name, path in files], election)
    return FoundInputs(submissions, sorted(unread + skipped, key=lambda s: s.name))


def _from_zip(archive: Path, election: str | None) -> FoundInputs:
    try:
        with zipfile.ZipFile(archive) as z:
            members = [(index, info) for index, info in enumerate(z.infolist()) if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{archive}: not a readable zip ({exc})") from exc
    entries, seen = [], Counter()
    for index, info in members:
        seen[info.filename] += 1
        source = f"{archive.name}:{info.filename}" + (f" (duplicate {seen[info.filename]})" if seen[info.filename] > 1 else "")
        entries.append((PurePosixPath(info.filename.replace("\\", "/")).as_posix(), source,
                        PhotoRef(source, info.filename, str(archive), member=index)))
    return FoundInputs(*_photos(entries, election, f"{archive.name}:"))


def _manifest_text(manifest: Path) -> str:
    """The manifest's text in the encoding a spreadsheet wrote it in: by its BOM, else UTF-8, else cp1252."""
    data = manifest.read_bytes()
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # 5 bytes cp1252 leaves undefined: shown as such, not a crash


def _manifest_rows(manifest: Path) -> list[dict[str, str]]:
    """The manifest's rows by column name (lower case), with the delimiter that splits its header into the names."""
    text = _manifest_text(manifest)
    header = text.splitlines()[0] if text.strip() else ""
    for delimiter in (",", ";", "\t"):
        if {"submission", "path"} <= {cell.strip().lower() for cell in next(csv.reader([header], delimiter=delimiter))}:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            columns = [cell.strip().lower() for cell in next(reader)]
            return [dict(zip(columns, row)) for row in reader]
    raise InputError(f"{manifest}: a manifest needs a header line 'submission,path' and one row per photo")


def _from_manifest(manifest: Path, election: str | None) -> FoundInputs:
    try:
        rows = _manifest_rows(manifest)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest}: cannot be read as a CSV manifest ({exc})") from exc
    groups: dict[str, list[PhotoRef]] = defaultdict(list)
    skipped, first_line, places = [], {}, {}
    for line, row in enumerate(rows, start=2):
        submission, photo = (row.get("submission") or "").strip(), (row.get("path") or "").strip()
        if not submission and not photo:
            continue  # a blank row (spreadsheets write them below the table)
        if not submission or not photo:
            skipped.append(Skipped(f"{manifest.name}:{line}", "a row without a submission or a path"))
        elif (submission, photo) in first_line:
            skipped.append(Skipped(f"{manifest.name}:{line}", f"repeats line {first_line[submission, photo]}: read once"))
        else:
            first_line[submission, photo] = line
            path = Path(photo) if Path(photo).is_absolute() else manifest.parent / photo
            groups[submission].append(PhotoRef(photo, str(path)))
            if places.get(submission) is None:
                places[submission] = from_manifest(row, election)
    return FoundInputs([SubmissionInput(sub, tuple(refs), places[sub]) for sub, refs in groups.items()], skipped)


def find_submissions(input_path: Path, election: str | None = None) -> FoundInputs:
    """The submissions INPUT holds (folder, .zip or .csv manifest), in a stable order, and the entries skipped;
    `election`: the one of the TPS a folder path or a manifest row without `pemilihan` names."""
    if input_path.is_dir():
        return _from_folder(input_path, election)
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    if not input_path.is_file():
        raise InputError(f"{input_path}: {_kind(input_path.stat().st_mode)}, not a file or folder")
    if input_path.suffix.lower() == ".zip":
        return _from_zip(input_path, election)
    if input_path.suffix.lower() == ".csv":
        return _from_manifest(input_path, election)
    if _is_photo(input_path.name):
        return FoundInputs([SubmissionInput(readable(input_path.stem), (PhotoRef(readable(input_path.name),
                                                                                 str(input_path)),))], [])
    raise InputError(f"{input_path}: give a folder, a .zip, a .csv manifest or a photo")

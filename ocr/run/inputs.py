"""What a batch reads: submissions (the photos of one TPS) found in a folder, a zip or a CSV manifest.

- Folder: every folder below INPUT that holds photos is one submission, named by its path
  relative to INPUT (`kab-x/tps-0001`); photos loose in INPUT itself are one submission each.
- Zip: the same rules over the member paths.
- CSV manifest: rows of `submission,path` (a header line with those names); rows with the same
  submission are its photos; relative paths are relative to the manifest's folder.

Photos are recognised by name here (a text file named .jpg is still taken, and refused by the
decoder with `not_an_image`); every other file is counted as skipped, never silently dropped.
Bytes are read by the worker that reads the photo, so the main process never holds them.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ocr.pipeline import PhotoInput
from ocr.reader.reasons import ReasonCode, Refusal

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})
MAX_PHOTO_BYTES = 64 * 1024 * 1024  # a 12 MP JPEG is 3-8 MB; larger is not a phone photo (and not read into memory)


class InputError(ValueError):
    """INPUT itself cannot be used (missing, not a folder/zip/CSV, malformed manifest)."""


@dataclass(frozen=True)
class PhotoRef:
    """One photo: a file on disk, or a member of a zip (`archive` set, `path` the member name)."""

    source: str  # the name reported in results
    path: str
    archive: str | None = None
    sha256: str = ""  # known already (a file of the content-addressed photo store, named by it): not hashed again

    def size(self) -> int:
        if self.archive is None:
            return Path(self.path).stat().st_size
        with zipfile.ZipFile(self.archive) as z:
            return z.getinfo(self.path).file_size

    def read_bytes(self) -> bytes:
        if self.archive is None:
            return Path(self.path).read_bytes()
        with zipfile.ZipFile(self.archive) as z:
            return z.read(self.path)

    def load(self) -> PhotoInput:
        """The photo's bytes and their sha256 (the one place a photo is hashed, unless its hash is known), or why the
        file cannot be read."""
        try:
            size = self.size()
            if size > MAX_PHOTO_BYTES:
                return PhotoInput(self.source, Refusal(
                    ReasonCode.IMAGE_TOO_LARGE, f"{self.source}: {size / 2**20:.0f} MB; a photo of a form is under "
                    f"{MAX_PHOTO_BYTES // 2**20} MB: send the camera's original JPEG"))
            data = self.read_bytes()
        except (OSError, KeyError) as exc:  # KeyError: a zip member that vanished
            return PhotoInput(self.source, Refusal(ReasonCode.FILE_UNREADABLE, f"{self.source}: cannot be read ({exc})"))
        return PhotoInput(self.source, data, self.sha256 or hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class SubmissionInput:
    submission: str
    photos: tuple[PhotoRef, ...]

    @property
    def sources(self) -> list[str]:
        return [ref.source for ref in self.photos]


@dataclass(frozen=True)
class FoundInputs:
    submissions: list[SubmissionInput]
    skipped: list[str]  # files that are not photos by name (truth.json, notes): reported, not read

    @property
    def photo_count(self) -> int:
        return sum(len(s.photos) for s in self.submissions)


def _is_photo(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in PHOTO_SUFFIXES


def _group(names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Photo names (posix, relative) grouped into submissions by the folder rules; the others skipped."""
    groups: dict[str, list[str]] = defaultdict(list)
    skipped = []
    for name in sorted(names):
        if not _is_photo(name):
            skipped.append(name)
            continue
        parent = str(PurePosixPath(name).parent)
        groups[str(PurePosixPath(name).with_suffix("")) if parent == "." else parent].append(name)
    return dict(groups), skipped


def _from_folder(root: Path) -> FoundInputs:
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    groups, skipped = _group(names)
    return FoundInputs([SubmissionInput(sub, tuple(PhotoRef(n, str(root / n)) for n in members))
                        for sub, members in groups.items()], skipped)


def _from_zip(archive: Path) -> FoundInputs:
    try:
        with zipfile.ZipFile(archive) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a readable zip ({exc})") from exc
    groups, skipped = _group(names)
    return FoundInputs([SubmissionInput(sub, tuple(PhotoRef(f"{archive.name}:{n}", n, str(archive)) for n in members))
                        for sub, members in groups.items()], skipped)


def _from_manifest(manifest: Path) -> FoundInputs:
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"submission", "path"} <= rows[0].keys():
        raise InputError(f"{manifest}: a manifest needs a header line 'submission,path' and one row per photo")
    groups: dict[str, list[PhotoRef]] = defaultdict(list)
    for line, row in enumerate(rows, start=2):
        if not row["submission"] or not row["path"]:
            raise InputError(f"{manifest}:{line}: empty submission or path")
        path = Path(row["path"]) if Path(row["path"]).is_absolute() else manifest.parent / row["path"]
        groups[row["submission"]].append(PhotoRef(row["path"], str(path)))
    return FoundInputs([SubmissionInput(sub, tuple(refs)) for sub, refs in groups.items()], [])


def find_submissions(input_path: Path) -> FoundInputs:
    """The submissions INPUT holds (folder, .zip or .csv manifest), in a stable order."""
    if input_path.is_dir():
        return _from_folder(input_path)
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file or folder")
    if input_path.suffix.lower() == ".zip":
        return _from_zip(input_path)
    if input_path.suffix.lower() == ".csv":
        return _from_manifest(input_path)
    if _is_photo(input_path.name):
        return FoundInputs([SubmissionInput(input_path.stem, (PhotoRef(input_path.name, str(input_path)),))], [])
    raise InputError(f"{input_path}: give a folder, a .zip, a .csv manifest or a photo")

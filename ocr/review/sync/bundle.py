"""The bundle file: a zip of JSON members and photos, a manifest of every member's sha256, signed by the office.

The signature (Ed25519, 64 bytes) is the zip's comment and covers every byte before the comment's length field
(`SIGNED` + the sha256 of those bytes): members, manifest and the zip's own headers, so one byte changed anywhere is
refused. The manifest names the origin office, whose key the centre must trust. `open_bundle` checks all of it
before anything is read for import and answers a `Bundle` or a `Refusal` (a reason code and a message).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Literal, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ocr.review.sync.keys import OFFICE, OfficeKey

FORMAT = "formc-sync/1"
MANIFEST = "manifest.json"
SIGNED = FORMAT.encode() + b"\n"  # what the signature is over starts with the format: no other file's signature fits
SIGNATURE_TAIL = 2 + 64  # the comment's length field and the signature, the file's last bytes
CHUNK = 1 << 20
Model = TypeVar("Model", bound=BaseModel)
# What zipfile raises reading a damaged archive (a header, a flag, compressed data changed); ValidationError is a ValueError.
DAMAGED = (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError, KeyError)


class RefusalCode(StrEnum):
    NOT_A_BUNDLE = "not_a_bundle"
    UNKNOWN_SIGNER = "unknown_signer"
    BAD_SIGNATURE = "bad_signature"
    MEMBER_HASH_MISMATCH = "member_hash_mismatch"
    MEMBER_MISSING = "member_missing"
    UNLISTED_MEMBER = "unlisted_member"
    BAD_MEMBER = "bad_member"


@dataclass(frozen=True)
class Refusal:
    """Why a bundle is not imported. `message` is English with `%(name)s` placeholders that `params` fill (the web
    app translates it first)."""

    code: RefusalCode
    message: str
    params: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message % self.params}"


def refused(code: RefusalCode, message: str, **params: object) -> Refusal:
    return Refusal(code, message, params)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["formc-sync/1"]
    bundle: str = Field(pattern=r"^[0-9a-f-]{36}$")  # a uuid4: the bundle's identity in both databases
    origin: str = Field(pattern=f"^{OFFICE.pattern}$")
    since: datetime | None  # what changed from then on (None: everything)
    until: datetime  # when the export read the office's database
    members: dict[str, str]  # member name -> sha256 of its bytes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signed_digest(stream: IO[bytes], length: int) -> bytes:
    """`SIGNED` + the sha256 of the stream's first `length` bytes."""
    digest, left = hashlib.sha256(), length
    stream.seek(0)
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return SIGNED + digest.digest()


def write_bundle(out: Path, key: OfficeKey, bundle_id: str, since: datetime | None, until: datetime,
                 members: Iterable[tuple[str, bytes]]) -> Manifest:
    """Writes the members, the manifest and the signature to `out`, which appears whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".zip")
    try:
        with os.fdopen(fd, "w+b") as f:
            listed: dict[str, str] = {}
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, data in members:
                    # Photos are JPEGs already: stored, not compressed again.
                    archive.writestr(name, data, zipfile.ZIP_STORED if name.startswith("photos/") else None)
                    listed[name] = _sha256(data)
                manifest = Manifest(format=FORMAT, bundle=bundle_id, origin=key.office, since=since, until=until,
                                    members=listed)
                archive.writestr(MANIFEST, manifest.model_dump_json(indent=1))
            # The zip ends with its end record, whose last 2 bytes are the comment's length (0): signed up to them.
            size = f.seek(0, os.SEEK_END)
            signature = key.private.sign(_signed_digest(f, size - 2))
            f.seek(size - 2)
            f.write(len(signature).to_bytes(2, "little") + signature)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


@dataclass
class Bundle:
    """An opened bundle whose signature, signer and member hashes are checked."""

    manifest: Manifest
    archive: zipfile.ZipFile

    def read(self, name: str) -> bytes:
        return self.archive.read(name)

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.manifest.members if n.startswith(prefix))


def _check(stream: IO[bytes], trusted: Callable[[str], Ed25519PublicKey | None]) -> Bundle | Refusal:
    not_a_bundle = refused(RefusalCode.NOT_A_BUNDLE, "not a formc sync bundle (formc sync export writes them)")
    size = stream.seek(0, os.SEEK_END)
    stream.seek(size - SIGNATURE_TAIL if size > SIGNATURE_TAIL else 0)
    tail = stream.read(SIGNATURE_TAIL)
    if size < SIGNATURE_TAIL + 22 or tail[:2] != (64).to_bytes(2, "little"):
        return not_a_bundle
    try:
        archive = zipfile.ZipFile(stream)
        manifest = Manifest.model_validate_json(archive.read(MANIFEST))
    except DAMAGED:
        return not_a_bundle
    key = trusted(manifest.origin)
    if key is None:
        return refused(RefusalCode.UNKNOWN_SIGNER, "the office %(office)s has no key registered here (formc sync trust)",
                       office=manifest.origin)
    present = set(archive.namelist()) - {MANIFEST}
    if unlisted := sorted(present - set(manifest.members)):
        return refused(RefusalCode.UNLISTED_MEMBER, "%(member)s is in the bundle but not in its manifest",
                       member=unlisted[0])
    if missing := sorted(set(manifest.members) - present):
        return refused(RefusalCode.MEMBER_MISSING, "%(member)s is in the manifest but not in the bundle", member=missing[0])
    for name, sha in sorted(manifest.members.items()):
        try:
            digest = hashlib.sha256()
            with archive.open(name) as member:
                while chunk := member.read(CHUNK):
                    digest.update(chunk)
            same = digest.hexdigest() == sha
        except DAMAGED:  # its CRC or compressed data fails: damaged or changed, as a wrong hash
            same = False
        if not same:
            return refused(RefusalCode.MEMBER_HASH_MISMATCH, "%(member)s is not what the office signed: changed or "
                           "damaged", member=name)
    try:
        key.verify(tail[2:], _signed_digest(stream, size - SIGNATURE_TAIL))
    except InvalidSignature:
        return refused(RefusalCode.BAD_SIGNATURE, "the bundle's signature does not match the key of %(office)s: "
                       "changed after it was signed, or signed by another key", office=manifest.origin)
    return Bundle(manifest, archive)


@contextmanager
def open_bundle(stream: IO[bytes], trusted: Callable[[str], Ed25519PublicKey | None]) -> Iterator[Bundle | Refusal]:
    """The bundle in `stream` (a seekable binary file), checked against the key `trusted(office)` gives for its
    origin; or why it is refused."""
    opened = _check(stream, trusted)
    try:
        yield opened
    finally:
        if isinstance(opened, Bundle):
            opened.archive.close()


def read_json(bundle: Bundle, name: str, model: type[Model]) -> Model | Refusal:
    """A JSON member as `model`, or `bad_member` (signed, but not what this version of formc reads)."""
    try:
        return model.model_validate_json(bundle.read(name))
    except ValidationError as exc:
        return refused(RefusalCode.BAD_MEMBER, "%(member)s cannot be read: %(error)s", member=name,
                       error=exc.errors()[0]["msg"])


def json_member(data: object) -> bytes:
    """A JSON member's bytes: sorted keys, so the same content is the same bytes (and the same sha256)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

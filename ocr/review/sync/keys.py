"""An office's signing key (Ed25519) and the office keys the centre trusts.

The key file (`formc sync keygen`) is JSON, `{"office": ..., "private_key": <base64 of the 32 raw bytes>}`, mode 0600,
kept on the office's laptop; the office's public key (base64, printed by keygen) is registered at the centre by an
admin (`formc sync trust OFFICE KEY`): the centre imports bundles signed by a key it holds for their office, none else.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ocr.db.tables import SyncKeyRow
from ocr.review.audit import record

OFFICE = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")  # an office's name: a bundle's origin, a suffix of its users' names


class KeyFileError(ValueError):
    """A key file or public key that cannot be used (the message says why)."""


@dataclass(frozen=True)
class OfficeKey:
    office: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> str:
        """The public key as the centre registers it: base64 of its 32 raw bytes."""
        return base64.b64encode(self.private.public_key().public_bytes_raw()).decode()


def office_name(name: str) -> str:
    if not OFFICE.fullmatch(name):
        raise KeyFileError(f"{name!r} is no office name: 1-40 lower-case letters, digits, '.', '_' or '-'")
    return name


def new_key(office: str) -> OfficeKey:
    return OfficeKey(office_name(office), Ed25519PrivateKey.generate())


def write_key(key: OfficeKey, path: Path) -> None:
    """Writes the key file, readable by its owner only; an existing file is never overwritten."""
    text = json.dumps({"office": key.office, "private_key": base64.b64encode(key.private.private_bytes_raw()).decode()})
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} exists: a key is never overwritten (its bundles could no longer be told apart)") from exc
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def read_key(path: Path) -> OfficeKey:
    try:
        data = json.loads(path.read_text())
        raw = base64.b64decode(data["private_key"], validate=True)
        return OfficeKey(office_name(data["office"]), Ed25519PrivateKey.from_private_bytes(raw))
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyFileError(f"{path}: not an office key file (formc sync keygen): {exc}") from exc


def public_key(text: str) -> Ed25519PublicKey:
    """The public key from its base64 text."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise KeyFileError(f"not an Ed25519 public key (base64 of 32 bytes, as formc sync keygen prints it): {exc}") from exc


def trust(engine: Engine, office: str, key_text: str) -> bool:
    """Registers `key_text` as `office`'s key, replacing an earlier one (a new laptop); logged. Whether it replaced one."""
    key = base64.b64encode(public_key(key_text).public_bytes_raw()).decode()
    with Session(engine) as session, session.begin():
        row = session.get(SyncKeyRow, office_name(office))
        if row is None:
            session.add(SyncKeyRow(office=office, public_key=key))
        else:
            row.public_key = key
        record(session, None, "sync_trust", None, {"office": office, "public_key": key, "replaced": row is not None})
    return row is not None


def trusted(engine: Engine, office: str) -> Ed25519PublicKey | None:
    """The key the centre holds for `office`, or None."""
    with Session(engine) as session:
        row = session.get(SyncKeyRow, office)
    return public_key(row.public_key) if row is not None else None

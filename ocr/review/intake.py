"""What an upload of a TPS's photos becomes: the submission those photos already are, a read, or a refusal.

- Photos stored already for this TPS name (all of them in its newest read): that submission, not read again.
- Any photo stored already under another TPS name: refused as a conflict a person resolves (`PhotosElsewhere`),
  logged; never merged into the other TPS, and the upload grants no access to it.
- The TPS's newest read lacks pages or a readable photo (`incomplete`, `rejected`) and is not verified: the new
  photos are read together with the pages read before, as the same submission (`Read.replaces`); every page again
  (as many photos as the form has pages) is read alone, still as that submission. Only whoever uploaded it, or a
  reviewer, may complete it (`CompletedByOthers`): the read would show them the other operator's photos.
- Otherwise a new read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from ocr.record import photos_key
from ocr.review.accounts import User
from ocr.review.errors import ReviewError
from ocr.review.workflow import Reviews, SubmissionView
from ocr.templates.catalog import get_template

COMPLETABLE = ("incomplete", "rejected")  # machine statuses a later upload of the missing photos completes
COMPLETERS = ("reviewer", "admin")  # who may complete a TPS someone else uploaded


class PhotosElsewhere(ReviewError):
    """The photos (or some of them) are stored under another TPS name."""


class CompletedByOthers(ReviewError):
    """Another operator's incomplete TPS: theirs, or a reviewer's, to complete."""


@dataclass(frozen=True)
class Stored:
    """The photos are this stored submission's: show it."""

    submission_id: int


@dataclass(frozen=True)
class Read:
    """Read `photos` [(name, sha256)] as the TPS; `replaces`: the id of its incomplete read that this one completes;
    `kept`: how many of the photos are the pages uploaded before."""

    photos: list[tuple[str, str]]
    replaces: int | None = None
    kept: int = 0


def photo_name(filename: str, taken: set[str]) -> str:
    """A printable name for an uploaded file, unique among `taken` (phones send every photo as image.jpg)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePath(filename.replace("\\", "/")).name)[:80].strip("._") or "photo"
    name, n = stem, 2
    while name in taken:
        base, dot, ext = stem.rpartition(".")
        name = f"{base}-{n}.{ext}" if dot else f"{stem}-{n}"
        n += 1
    taken.add(name)
    return name


def pages_kept(earlier: SubmissionView, new_photos: int) -> list[tuple[str, str]]:
    """(name, sha256) of the photos of `earlier` that a later upload of `new_photos` photos is read with: the pages
    read from them; none when the upload brings every page of the form again."""
    template = get_template(earlier.result.template) if earlier.result.template else None
    if template is None or new_photos >= len(template.pages):
        return []
    return [(p.source, p.sha256) for p in earlier.result.pages if p.status == "read"]


def intake(reviews: Reviews, user: User, submission: str, photos: list[tuple[str, str]]) -> Stored | Read:
    """What the upload of `photos` [(name, sha256)] by `user` as TPS `submission` becomes (module docstring); raises
    `PhotosElsewhere` or `CompletedByOthers`."""
    shas = {sha for _, sha in photos}
    latest = reviews.latest(submission)
    if latest is not None and shas <= {p.sha256 for p in latest.result.pages}:
        return Stored(latest.id)
    if (elsewhere := reviews.photos_elsewhere(shas, submission)) is not None:
        other_id, other = elsewhere
        reviews.log(user, "upload_conflict", other_id, submission=submission, photos_of=other,
                    photos=[name for name, _ in photos])
        raise PhotosElsewhere("These photos were uploaded before for TPS %(other)s; they were not added to %(name)s. "
                              "Each TPS photographs its own form: if these are %(name)s's photos, ask a reviewer to "
                              "check %(other)s; otherwise take the photos of %(name)s's form and upload those.",
                              other=other, name=submission)
    completing = latest if latest is not None and latest.result.status in COMPLETABLE and latest.state == "open" else None
    kept = pages_kept(completing, len(photos)) if completing is not None else []
    kept = [(name, sha) for name, sha in kept if sha not in shas]
    taken = {name for name, _ in kept}
    together = kept + [(photo_name(name, taken), sha) for name, sha in photos]
    stored = reviews.id_of(submission, photos_key([sha for _, sha in together], [name for name, _ in together]))
    if stored is not None:
        return Stored(stored)
    if completing is not None and user.role not in COMPLETERS and not reviews.has_uploaded(user, completing.id):
        raise CompletedByOthers("TPS %(name)s was uploaded by another operator and still lacks pages: they or a "
                                "reviewer upload the missing pages.", name=submission)
    return Read(together, completing.id if completing is not None else None, len(kept))

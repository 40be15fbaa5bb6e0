"""The review actions' refusals: each says why, in words a person can act on."""

from __future__ import annotations


class ReviewError(Exception):
    """An action refused for a reason a person can act on (the message says which)."""


class Locked(ReviewError):
    """The submission is verified: reopen it first."""


class FourEyes(ReviewError):
    """The uploader of a submission tried to verify it."""


class LastAdmin(ReviewError):
    """The last active admin would be deactivated or lose the role."""


class NoSuchUser(ReviewError):
    """No account has the name given."""

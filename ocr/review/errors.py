"""The review actions' refusals: each says why, in words a person can act on."""

from __future__ import annotations


class ReviewError(Exception):
    """An action refused for a reason a person can act on (the message says which).

    `message` is English with `%(name)s` placeholders that `params` fill; a surface may show it in another
    language by translating `message` before filling it in (the web app's catalog has these messages)."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.message, self.params = message, params


class Locked(ReviewError):
    """The submission is verified: reopen it first."""


class FourEyes(ReviewError):
    """The uploader of a submission tried to verify it."""


class LastAdmin(ReviewError):
    """The last active admin would be deactivated or lose the role."""


class NoSuchUser(ReviewError):
    """No account has the name given."""

"""The error tree.

The API maps these to HTTP once, in api/errors.py (no status lives here); workers decide
retries by type.
"""

from __future__ import annotations


class MinaError(Exception):
    """Base of every error Mina raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(MinaError):
    """A setting is wrong or a configured service cannot be reached at start."""

    code = "configuration"


class TransientError(MinaError):
    """Worth retrying: timeouts, 429, 5xx, lost connections, an open circuit."""

    code = "transient"


class PermanentError(MinaError):
    """Retrying cannot help: corrupt audio, a provider's 400/401, invalid output twice."""

    code = "permanent"


class ValidationError(MinaError):
    """The caller sent something we refuse (bad index, malformed body)."""

    code = "invalid"


class TooLarge(ValidationError):
    code = "too_large"


class UnsupportedMedia(ValidationError):
    code = "unsupported_media"


class Unauthorized(MinaError):
    """No credentials, or credentials that do not parse."""

    code = "unauthorized"


class Forbidden(MinaError):
    """Credentials that are valid but not for this resource."""

    code = "forbidden"


class NotFound(MinaError):
    code = "not_found"


class Conflict(MinaError):
    """The request contradicts the stored state (other bytes for an index, upload after finish)."""

    code = "conflict"


class NotReady(Conflict):
    """A result was asked for before it exists."""

    code = "not_ready"

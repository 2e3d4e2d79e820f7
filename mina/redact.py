"""Secrets out of log lines: credentials carried in URLs are replaced before a line is written.

Participant links carry `?token=…` (an EventSource cannot send headers), and presigned S3 URLs
carry their signature, so any line that quotes a request (an access log) would write them.
`RedactFilter` rewrites such records; the web process puts it on werkzeug's request log
(`mina web`, `mina dev`) and gunicorn's access log uses `redact` on every field
(api/gunicorn_config.py).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
#: Query parameters whose value is a credential.
SECRET_PARAMS = (
    "token",
    "access_token",
    "api_key",
    "key",
    "secret",
    "password",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)
_QUERY = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)[^&;\s\"'\x1b]*"
)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")


def redact(text: str) -> str:
    """`text` with credential query values and URL passwords replaced by `[redacted]`."""
    if "=" in text:
        text = _QUERY.sub(rf"\1{REDACTED}", text)
    if "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites a record whose message carries a credential; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(logger: logging.Logger) -> None:
    """Put one RedactFilter on `logger` (idempotent)."""
    if not any(isinstance(f, RedactFilter) for f in logger.filters):
        logger.addFilter(RedactFilter())

"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The secret is `whsec_` + base64 of the key; the signature is base64 of HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}`, sent as `webhook-signature: v1,<signature>`. Any
Standard Webhooks library verifies it (the tests use the `standardwebhooks` package).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from mina.errors import ValidationError

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; `ValidationError` if it is not one."""
    raw = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ValidationError("secret: not whsec_ followed by base64") from exc
    if not 16 <= len(key) <= 64:
        raise ValidationError("secret: the key must be 16 to 64 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key_of(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "user-agent": "Mina-Webhooks/1",
    }

"""Blob storage: local disk for the embedded mode, S3 (or MinIO) in production.

Both backends stream: `put` reads the source in blocks and computes its sha256 on the way, so a
one-hour recording never sits in memory. Keys are relative, slash-separated names such as
`conversations/<id>/chunks/00001.webm`; anything else is refused before it reaches a backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mina.errors import ConfigurationError
from mina.storage.base import (
    BLOCK_SIZE,
    MAX_KEY_LENGTH,
    PART_SIZE,
    BlobInfo,
    Storage,
    StoredBlob,
    validate_key,
    validate_prefix,
)
from mina.storage.local import LocalStorage

if TYPE_CHECKING:
    from mina.settings import Settings
    from mina.storage.s3 import S3Storage


def __getattr__(name: str) -> object:
    """`S3Storage` on first use: boto3 takes ~0.1 s to import and the embedded mode never needs
    it."""
    if name == "S3Storage":
        from mina.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLOCK_SIZE",
    "MAX_KEY_LENGTH",
    "PART_SIZE",
    "BlobInfo",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StoredBlob",
    "build_storage",
    "validate_key",
    "validate_prefix",
]


def build_storage(settings: Settings) -> Storage:
    """The storage `settings.storage_url` names: a directory, `file://…` or `s3://bucket/prefix`."""
    url = settings.resolved_storage_url
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigurationError(f"MINA_STORAGE_URL {url!r} names no bucket")
        from mina.storage.s3 import S3Storage

        return S3Storage(
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            presign_endpoint_url=settings.s3_public_endpoint_url,
        )
    if url.startswith("file://"):
        return LocalStorage(Path(unquote(urlsplit(url).path)))
    if "://" in url:
        raise ConfigurationError(f"MINA_STORAGE_URL {url!r}: use a directory or s3://bucket/prefix")
    return LocalStorage(Path(url))

"""Blob storage: the interface, keys and the records every backend returns."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mina.errors import (
    ValidationError,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
# Size of an S3 multipart part (S3's minimum is 5 MiB, its maximum count 10,000: 80 GiB). A part
# is spooled to a temporary file, never held in memory.
PART_SIZE = 8 * 1024 * 1024
MAX_KEY_LENGTH = 1024
_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401"}


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: datetime  # UTC, naive (like every datetime in the database)


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative name, else raise ValidationError."""
    if not key or len(key) > MAX_KEY_LENGTH or not _KEY_CHARS.fullmatch(key):
        raise ValidationError(f"invalid storage key {key!r}: use [A-Za-z0-9._/-]")
    for part in key.split("/"):
        # empty parts ("a//b", "/abs", "dir/"), ".", ".." and hidden names (our temp files)
        if not part or part.startswith("."):
            raise ValidationError(f"invalid storage key {key!r}: bad path segment {part!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """A list prefix is a key, a key ending in '/', or empty (everything)."""
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _fill_part(stream: BinaryIO, part: BinaryIO, digest: Any, limit: int) -> int:
    """Copy up to `limit` bytes of `stream` into the empty file `part`, hashing them."""
    part.seek(0)
    part.truncate()
    length = 0
    while length < limit and (block := stream.read(min(BLOCK_SIZE, limit - length))):
        digest.update(block)
        part.write(block)
        length += len(block)
    part.flush()
    part.seek(0)
    return length


class Storage(ABC):
    """Where blobs live. Every method takes a key checked by `validate_key`."""

    @abstractmethod
    def put(self, key: str, stream: BinaryIO, *, content_type: str | None = None) -> StoredBlob:
        """Store the rest of `stream` under `key`, replacing it atomically."""

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> StoredBlob:
        with open(path, "rb") as stream:
            return self.put(key, stream, content_type=content_type)

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A read stream; the caller closes it. NotFound if missing."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    @abstractmethod
    def download(self, key: str, dst_path: Path) -> None:
        """Copy the blob to `dst_path` (written to a temp file, then renamed into place)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; NotFound if missing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Blobs whose key starts with `prefix` (a string prefix, as in S3), in key order."""

    @abstractmethod
    def presign_put(self, key: str, content_type: str, expires: int = 900) -> str: ...

    @abstractmethod
    def presign_get(self, key: str, expires: int = 900) -> str: ...

    @abstractmethod
    def ping(self) -> None:
        """Raise TransientError when the storage cannot be used (for /readyz)."""

    @abstractmethod
    def local_path(self, key: str) -> Path | None:
        """The blob's file on this machine when there is one (for ffmpeg), else None."""


def write_atomically(src: BinaryIO, dst_path: Path) -> None:
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst_path.parent, prefix=f".{dst_path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, BLOCK_SIZE)
        os.replace(tmp_name, dst_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise

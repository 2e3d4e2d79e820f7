"""Blob storage: local disk for the embedded mode, S3 (or MinIO) in production.

Both backends stream: `put` reads the source in blocks and computes its sha256 on the way, so a
one-hour recording never sits in memory. Keys are relative, slash-separated names such as
`conversations/<id>/chunks/00001.webm`; anything else is refused before it reaches a backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
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
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from mina.errors import (
    ConfigurationError,
    MinaError,
    NotFound,
    PermanentError,
    TransientError,
    ValidationError,
)

if TYPE_CHECKING:
    from mina.settings import Settings

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


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, stream: BinaryIO, *, content_type: str | None = None) -> StoredBlob:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                while block := stream.read(BLOCK_SIZE):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        log.debug("stored %s (%d bytes) on disk", key, size)
        return StoredBlob(key=key, size=size, sha256=digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"blob {key} not found") from exc

    def download(self, key: str, dst_path: Path) -> None:
        dst_path = Path(dst_path)
        with self.open(key) as src:
            _write_atomically(src, dst_path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"blob {key} not found")
        return path.stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        validate_prefix(prefix)
        # Walk only the deepest directory the prefix names, then filter by string prefix.
        start = self.root / prefix.rpartition("/")[0]
        found: list[BlobInfo] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue  # a put in progress
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = full.stat()
                except FileNotFoundError:
                    continue  # deleted while we walked
                modified = datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None)
                found.append(BlobInfo(key=key, size=stat.st_size, modified=modified))
        found.sort(key=lambda info: info.key)
        yield from found

    def presign_put(self, key: str, content_type: str, expires: int = 900) -> str:
        raise ValidationError("presigned URLs need S3 storage")

    def presign_get(self, key: str, expires: int = 900) -> str:
        raise ValidationError("presigned URLs need S3 storage")

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise TransientError(f"storage directory {self.root} is missing or not writable")

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"blob {key} not found")
        return path


def _write_atomically(src: BinaryIO, dst_path: Path) -> None:
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


def _error_code(exc: ClientError) -> tuple[str, int]:
    error: Any = exc.response.get("Error", {})
    meta: Any = exc.response.get("ResponseMetadata", {})
    return str(error.get("Code", "")), int(meta.get("HTTPStatusCode") or 0)


@contextlib.contextmanager
def _s3_errors(operation: str, key: str) -> Iterator[None]:
    """Translate botocore's errors into Mina's tree, naming the operation and the key."""
    try:
        yield
    except ClientError as exc:
        code, status = _error_code(exc)
        where = f"S3 {operation} {key}"
        if code == "NoSuchBucket":
            raise ConfigurationError(f"{where}: the bucket does not exist") from exc
        if code in _NOT_FOUND_CODES or status == 404:
            raise NotFound(f"blob {key} not found") from exc
        if code in _AUTH_CODES or status in (401, 403):
            raise ConfigurationError(f"{where}: access denied ({code})") from exc
        if status == 429 or status >= 500 or code in ("SlowDown", "RequestTimeout"):
            raise TransientError(f"{where}: {code or status}") from exc
        raise PermanentError(f"{where}: {code or status}") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ConfigurationError(f"S3 {operation} {key}: no credentials") from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise TransientError(f"S3 {operation} {key}: {exc}") from exc


class _S3Body(io.RawIOBase):
    """An S3 response body as a file object whose network errors are TransientError."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with _s3_errors("read", self._key):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Storage(Storage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        presign_endpoint_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        """Credentials default to boto3's chain (AWS_ACCESS_KEY_ID, ~/.aws, instance role).

        `presign_endpoint_url` is the endpoint browsers reach when it differs from the one
        servers use (MinIO at http://minio:9000 inside compose, localhost:9000 outside).
        """
        if prefix:
            validate_key(prefix.strip("/"))
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        config = Config(
            signature_version="s3v4",
            # MinIO and moto answer on one host; virtual-host style needs DNS per bucket.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._presigner: Any = self.client
        if presign_endpoint_url:
            self._presigner = session.client("s3", endpoint_url=presign_endpoint_url, config=config)
        self.part_size = PART_SIZE
        # Follow botocore's setting (AWS_REQUEST_CHECKSUM_CALCULATION): CRC32 per request.
        checksums = self.client.meta.config.request_checksum_calculation
        self._checksum: dict[str, str] = (
            {"ChecksumAlgorithm": "CRC32"} if checksums == "when_supported" else {}
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, stream: BinaryIO, *, content_type: str | None = None) -> StoredBlob:
        """Stream to S3 one part at a time, hashing on the way.

        The source is read once, forward only, in blocks; each part is spooled to a temporary
        file so botocore can retry a request by seeking back, and memory stays at one block
        whatever the blob's size. A blob smaller than a part is one PutObject; a larger one is a
        multipart upload, aborted if anything fails, so a half-written blob never appears.
        The sha256 is only known at the end, so it is returned rather than stored as metadata.
        """
        full = self._full(key)
        extra = {"ContentType": content_type} if content_type else {}
        digest = hashlib.sha256()
        with tempfile.TemporaryFile(prefix="mina-part-") as part:
            length = _fill_part(stream, part, digest, self.part_size)
            if length < self.part_size:
                with _s3_errors("put", key):
                    self.client.put_object(
                        Bucket=self.bucket, Key=full, Body=part, ContentLength=length, **extra
                    )
                size = length
            else:
                size = self._put_parts(key, stream, part, length, digest, extra)
        log.debug("stored %s (%d bytes) in s3://%s", key, size, self.bucket)
        return StoredBlob(key=key, size=size, sha256=digest.hexdigest())

    def _put_parts(
        self,
        key: str,
        stream: BinaryIO,
        part: BinaryIO,
        length: int,
        digest: Any,
        extra: dict[str, str],
    ) -> int:
        """Upload `part` (`length` bytes, already filled) and the rest of `stream` in parts."""
        full = self._full(key)
        with _s3_errors("put", key):
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, **extra, **self._checksum
            )
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        size = length
        try:
            while length:
                number = len(parts) + 1
                with _s3_errors("put", key):
                    response = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=full,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                        ContentLength=length,
                        **self._checksum,
                    )
                done: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
                if "ChecksumCRC32" in response:
                    done["ChecksumCRC32"] = response["ChecksumCRC32"]
                parts.append(done)
                length = _fill_part(stream, part, digest, self.part_size)
                size += length
            with _s3_errors("put", key):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self._abort(key, full, upload_id)
            raise
        return size

    def _abort(self, key: str, full: str, upload_id: str) -> None:
        try:
            with _s3_errors("abort", key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except MinaError as exc:
            # The original error is the one to raise; the parts are left to the bucket's
            # lifecycle rule for incomplete multipart uploads.
            log.warning("could not abort upload %s of %s: %s", upload_id, key, exc.message)

    def open(self, key: str) -> BinaryIO:
        full = self._full(key)
        with _s3_errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full)
        raw = _S3Body(response["Body"], key)
        return io.BufferedReader(raw, buffer_size=BLOCK_SIZE)  # type: ignore[return-value]

    def download(self, key: str, dst_path: Path) -> None:
        with self.open(key) as src:
            _write_atomically(src, Path(dst_path))

    def _head(self, key: str) -> dict[str, Any]:
        full = self._full(key)
        with _s3_errors("head", key):
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=full)
        return response

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def delete(self, key: str) -> None:
        full = self._full(key)
        with _s3_errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        with _s3_errors("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    yield BlobInfo(
                        key=item["Key"][len(base) :],
                        size=int(item["Size"]),
                        modified=_utc_naive(item["LastModified"]),
                    )

    def presign_put(self, key: str, content_type: str, expires: int = 900) -> str:
        params = {"Bucket": self.bucket, "Key": self._full(key), "ContentType": content_type}
        with _s3_errors("presign", key):
            url: str = self._presigner.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=expires, HttpMethod="PUT"
            )
        return url

    def presign_get(self, key: str, expires: int = 900) -> str:
        params = {"Bucket": self.bucket, "Key": self._full(key)}
        with _s3_errors("presign", key):
            url: str = self._presigner.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires, HttpMethod="GET"
            )
        return url

    def ping(self) -> None:
        try:
            with _s3_errors("head bucket", self.bucket):
                self.client.head_bucket(Bucket=self.bucket)
        except (ConfigurationError, NotFound, PermanentError) as exc:
            # Readiness only asks "can we use it now?": a missing bucket or a refused key is
            # as much "not ready" as a dead endpoint.
            raise TransientError(f"storage not usable: {exc.message}") from exc

    def local_path(self, key: str) -> Path | None:
        self._full(key)
        return None


def build_storage(settings: Settings) -> Storage:
    """The storage `settings.storage_url` names: a directory, `file://…` or `s3://bucket/prefix`."""
    url = settings.resolved_storage_url
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigurationError(f"MINA_STORAGE_URL {url!r} names no bucket")
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

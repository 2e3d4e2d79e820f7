"""S3-compatible storage (AWS S3, MinIO) with streamed multipart uploads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

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
)

if TYPE_CHECKING:
    pass

from mina.storage.base import (
    _AUTH_CODES,
    _NOT_FOUND_CODES,
    BLOCK_SIZE,
    PART_SIZE,
    BlobInfo,
    Storage,
    StoredBlob,
    _fill_part,
    _utc_naive,
    validate_key,
    validate_prefix,
    write_atomically,
)

log = logging.getLogger(__name__)


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
        checksums = getattr(self.client.meta.config, "request_checksum_calculation", None)
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
            write_atomically(src, Path(dst_path))

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

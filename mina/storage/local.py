"""Local-disk storage: the embedded default."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mina.errors import (
    NotFound,
    TransientError,
    ValidationError,
)

if TYPE_CHECKING:
    pass

from mina.storage.base import (
    BLOCK_SIZE,
    BlobInfo,
    Storage,
    StoredBlob,
    validate_key,
    validate_prefix,
    write_atomically,
)

log = logging.getLogger(__name__)


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
            write_atomically(src, dst_path)

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

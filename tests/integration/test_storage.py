"""Both storages through one suite: local disk, and S3 against a real moto server over HTTP."""

from __future__ import annotations

import hashlib
import os
import socket
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mina.errors import ConfigurationError, NotFound, TransientError, ValidationError
from mina.settings import Settings
from mina.storage import (
    BLOCK_SIZE,
    LocalStorage,
    S3Storage,
    Storage,
    build_storage,
    validate_key,
)

pytest_plugins = ["tests.fixtures.s3"]

MiB = 1024 * 1024
S3Factory = Callable[..., S3Storage]


class ChunkedStream:
    """A forward-only stream (no seek, no tell) that hands out at most `piece` bytes per read,
    like a socket or WSGI input, and can fail after `fail_after` bytes."""

    def __init__(self, data: bytes, piece: int = 64 * 1024, fail_after: int | None = None):
        self._data = memoryview(data)
        self._pos = 0
        self._piece = piece
        self._fail_after = fail_after
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("client went away")
        want = self._piece if size is None or size < 0 else min(size, self._piece)
        chunk = self._data[self._pos : self._pos + want]
        self._pos += len(chunk)
        return bytes(chunk)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "blobs")
    s3: S3Storage = request.getfixturevalue("s3_storage")
    return s3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- put, read back ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 12 * MiB + 7], ids=["empty", "small", "multipart"])
def test_put_streams_and_reports_size_and_sha256(storage: Storage, size: int) -> None:
    data = os.urandom(size)
    stream = ChunkedStream(data)

    blob = storage.put("conv/1/chunks/00001.webm", stream)  # type: ignore[arg-type]

    assert blob.key == "conv/1/chunks/00001.webm"
    assert blob.size == size
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.get_bytes(blob.key) == data
    assert storage.size(blob.key) == size
    # It was read in bounded blocks, never "everything at once".
    assert stream.reads
    assert all(0 < n <= BLOCK_SIZE for n in stream.reads)


def test_open_returns_a_read_stream(storage: Storage) -> None:
    data = os.urandom(3 * MiB)
    storage.put("a/b.bin", ChunkedStream(data))  # type: ignore[arg-type]

    with storage.open("a/b.bin") as stream:
        head = stream.read(10)
        rest = stream.read()

    assert head + rest == data


def test_put_file_and_download(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(6 * MiB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)

    blob = storage.put_file("files/src.bin", src)
    dst = tmp_path / "out" / "dst.bin"
    storage.download("files/src.bin", dst)

    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert dst.read_bytes() == data
    assert [p.name for p in dst.parent.iterdir()] == ["dst.bin"]  # no temp file left behind


def test_put_replaces_an_existing_blob(storage: Storage) -> None:
    storage.put("k/v", ChunkedStream(b"first version"))  # type: ignore[arg-type]
    blob = storage.put("k/v", ChunkedStream(b"second"))  # type: ignore[arg-type]

    assert storage.get_bytes("k/v") == b"second"
    assert blob.size == 6
    assert [info.key for info in storage.list("k/")] == ["k/v"]


def test_a_failing_source_leaves_no_blob_behind(storage: Storage) -> None:
    stream = ChunkedStream(os.urandom(12 * MiB), fail_after=7 * MiB)

    with pytest.raises(OSError, match="client went away"):
        storage.put("broken/blob", stream)  # type: ignore[arg-type]

    assert not storage.exists("broken/blob")
    assert list(storage.list("broken/")) == []
    if isinstance(storage, S3Storage):  # the multipart upload was aborted, not left behind
        pending = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert [u["Key"] for u in pending.get("Uploads", [])] == []


def test_exists_size_and_not_found(storage: Storage, tmp_path: Path) -> None:
    storage.put("here", ChunkedStream(b"12345"))  # type: ignore[arg-type]

    assert storage.exists("here")
    assert not storage.exists("missing")
    assert storage.size("here") == 5
    with pytest.raises(NotFound):
        storage.size("missing")
    with pytest.raises(NotFound):
        storage.open("missing")
    with pytest.raises(NotFound):
        storage.get_bytes("missing")
    with pytest.raises(NotFound):
        storage.download("missing", tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert list(tmp_path.glob(".never*")) == []


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.put("gone/soon", ChunkedStream(b"x"))  # type: ignore[arg-type]

    storage.delete("gone/soon")
    storage.delete("gone/soon")
    storage.delete("never/was")

    assert not storage.exists("gone/soon")
    with pytest.raises(NotFound):
        storage.size("gone/soon")


def test_list_by_prefix_with_sizes_and_modified_times(storage: Storage) -> None:
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(seconds=1)
    for key, body in [("a/1", b"1"), ("a/2", b"22"), ("ab/3", b"333"), ("b/4", b"4444")]:
        storage.put(key, ChunkedStream(body))  # type: ignore[arg-type]
    after = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)

    everything = list(storage.list())
    expected = [("a/1", 1), ("a/2", 2), ("ab/3", 3), ("b/4", 4)]
    assert [(i.key, i.size) for i in everything] == expected
    assert [i.key for i in storage.list("a/")] == ["a/1", "a/2"]
    assert [i.key for i in storage.list("a")] == ["a/1", "a/2", "ab/3"]
    assert [i.key for i in storage.list("b/4")] == ["b/4"]
    assert list(storage.list("c/")) == []
    for info in everything:
        assert info.modified.tzinfo is None
        assert before <= info.modified <= after


# --- keys ----------------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "../etc/passwd",
    "a/../../b",
    "a/./b",
    "/abs/path",
    "a//b",
    "dir/",
    ".hidden",
    "a/.tmp",
    "with space",
    "back\\slash",
    "ünïcode",
    "query?x=1",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_everywhere(storage: Storage, key: str, tmp_path: Path) -> None:
    calls = [
        lambda: storage.put(key, ChunkedStream(b"x")),  # type: ignore[arg-type]
        lambda: storage.open(key),
        lambda: storage.exists(key),
        lambda: storage.size(key),
        lambda: storage.delete(key),
        lambda: storage.download(key, tmp_path / "dst"),
    ]
    for call in calls:
        with pytest.raises(ValidationError):
            call()


def test_good_keys_pass_validation() -> None:
    for key in ["a", "conv/0f3a/chunks/00001.webm", "A-Z_0.9/x.y.z", "a/b/c/d/e"]:
        assert validate_key(key) == key


def test_bad_list_prefix_is_refused(storage: Storage) -> None:
    with pytest.raises(ValidationError):
        list(storage.list("../"))


# --- presigned URLs ------------------------------------------------------------------------


def test_presigned_put_then_get_over_http(s3_storage: S3Storage) -> None:
    data = os.urandom(200_000)
    put_url = s3_storage.presign_put("up/chunk.webm", "audio/webm", expires=60)
    assert put_url.startswith("http://127.0.0.1:")

    request = urllib.request.Request(
        put_url, data=data, method="PUT", headers={"Content-Type": "audio/webm"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    assert s3_storage.size("up/chunk.webm") == len(data)
    with urllib.request.urlopen(s3_storage.presign_get("up/chunk.webm"), timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/webm"
        assert response.read() == data


def test_presigned_get_of_a_missing_blob_is_404(s3_storage: S3Storage) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(s3_storage.presign_get("nothing/here"), timeout=10)
    assert caught.value.code == 404


def test_local_storage_refuses_presigned_urls(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path)
    with pytest.raises(ValidationError, match="presigned URLs need S3 storage"):
        local.presign_put("a", "audio/webm")
    with pytest.raises(ValidationError, match="presigned URLs need S3 storage"):
        local.presign_get("a")


# --- local paths, health, errors -----------------------------------------------------------


def test_local_path(storage: Storage) -> None:
    storage.put("p/q.wav", ChunkedStream(b"RIFF"))  # type: ignore[arg-type]
    path = storage.local_path("p/q.wav")
    if isinstance(storage, LocalStorage):
        assert path is not None
        assert path.read_bytes() == b"RIFF"
        with pytest.raises(NotFound):
            storage.local_path("p/missing.wav")
    else:
        assert path is None


def test_ping_when_healthy(storage: Storage) -> None:
    storage.ping()


def test_ping_local_without_its_directory(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path / "blobs")
    (tmp_path / "blobs").rmdir()
    with pytest.raises(TransientError):
        local.ping()


def test_ping_s3_with_a_missing_bucket(s3_storage_factory: S3Factory) -> None:
    storage = s3_storage_factory(bucket="no-such-bucket")
    with pytest.raises(TransientError):
        storage.ping()
    with pytest.raises(ConfigurationError, match="bucket does not exist"):
        storage.put("k", ChunkedStream(b"x"))  # type: ignore[arg-type]


def test_unreachable_s3_is_transient(s3_storage_factory: S3Factory) -> None:
    storage = s3_storage_factory(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        connect_timeout=1,
        read_timeout=1,
        max_attempts=1,
    )
    with pytest.raises(TransientError):
        storage.ping()
    with pytest.raises(TransientError):
        storage.get_bytes("any/key")
    with pytest.raises(TransientError):
        storage.put("any/key", ChunkedStream(b"x"))  # type: ignore[arg-type]


# --- build_storage -------------------------------------------------------------------------


def test_build_storage_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINA_STORAGE_URL", raising=False)
    local = build_storage(Settings(storage_url=str(tmp_path / "d")))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "d").resolve()

    from_url = build_storage(Settings(storage_url=f"file://{tmp_path}/e"))
    assert isinstance(from_url, LocalStorage)
    assert from_url.root == (tmp_path / "e").resolve()

    default = build_storage(Settings(data_dir=tmp_path / "data"))
    assert isinstance(default, LocalStorage)
    assert default.root == (tmp_path / "data" / "blobs").resolve()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    s3 = build_storage(
        Settings(storage_url="s3://mina/blobs/x", s3_endpoint_url="http://127.0.0.1:9")
    )
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("mina", "blobs/x", "http://127.0.0.1:9")

    with pytest.raises(ConfigurationError):
        build_storage(Settings(storage_url="gs://bucket/x"))
    with pytest.raises(ConfigurationError):
        build_storage(Settings(storage_url="s3:///nobucket"))


def test_build_storage_s3_round_trip(
    s3_server: str, s3_storage_factory: S3Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole_bucket = s3_storage_factory(prefix="")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = Settings(storage_url=f"s3://{whole_bucket.bucket}/built", s3_endpoint_url=s3_server)

    storage = build_storage(settings)
    storage.put("k", ChunkedStream(b"via settings"))  # type: ignore[arg-type]

    assert storage.get_bytes("k") == b"via settings"
    assert [info.key for info in whole_bucket.list("built/")] == ["built/k"]


# --- memory --------------------------------------------------------------------------------


def test_put_of_50_mb_keeps_memory_bounded(storage: Storage, tmp_path: Path) -> None:
    size = 50 * MiB
    src = tmp_path / "big.bin"
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with open(src, "wb") as out:
        for _ in range(size // MiB):
            out.write(block)
            digest.update(block)
    del block

    with open(src, "rb") as stream:
        tracemalloc.start()
        try:
            blob = storage.put("big/blob.bin", stream)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert blob.size == size
    assert blob.sha256 == digest.hexdigest()
    assert storage.size("big/blob.bin") == size
    print(f"{type(storage).__name__}: peak {peak / MiB:.2f} MiB for a {size // MiB} MiB put")
    assert peak < 10 * MiB, f"peak {peak / MiB:.1f} MiB"

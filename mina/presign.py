"""Presigned chunk uploads (S3 storage): the browser PUTs the bytes to S3, then confirms.

`presign_chunk` checks what it can before any byte moves (conversation open, index, size,
container type) and returns a PUT URL for a fresh key that names the conversation, the index
and the announced size. `confirm_chunk` checks the object exists with that size, downloads it,
runs the same sniff, decode probe and sha256 as a direct upload (mina.ingest) and ends in the
same `ingest.admit`: the same row, idempotent on index, the same message. A refused object is
deleted. Objects presigned but never confirmed are swept by the scheduler's orphan-blob job
after its grace period (they live under `conversations/`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from mina import ingest
from mina.dispatch import Dispatcher
from mina.errors import MinaError, NotFound, TooLarge, UnsupportedMedia, ValidationError
from mina.settings import Settings
from mina.storage import Storage

PRESIGN_SECONDS = 900


@dataclass(frozen=True)
class Presigned:
    key: str
    url: str
    headers: dict[str, str]
    expires_in: int


def _prefix(conversation_id: str, index: int) -> str:
    return f"conversations/{conversation_id}/uploads/{index:06d}-"


def staged_size(conversation_id: str, index: int, key: str) -> int:
    """The size announced for `key`; refuses a key not presigned for this index."""
    pattern = re.escape(_prefix(conversation_id, index)) + r"(\d{1,12})-[0-9a-f]{16}\.[a-z0-9]{2,4}"
    found = re.fullmatch(pattern, key)
    if found is None:
        raise ValidationError(
            f"key {key!r} was not presigned for chunk {index} of this conversation",
            code="bad_key",
        )
    return int(found.group(1))


def presign_chunk(
    conversation_id: str,
    index: int,
    size: int,
    content_type: str,
    *,
    storage: Storage,
    settings: Settings,
) -> Presigned:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in ingest.EXTENSIONS:
        raise UnsupportedMedia(f"{content_type!r} is not an audio type we accept")
    if size <= 0:
        raise ValidationError("size must be positive", code="bad_size")
    if size > settings.max_chunk_bytes:
        raise TooLarge(f"chunk is larger than {settings.max_chunk_bytes} bytes")
    ingest.precheck(conversation_id, index)
    ext = ingest.EXTENSIONS[mime]
    key = f"{_prefix(conversation_id, index)}{size}-{secrets.token_hex(8)}.{ext}"
    try:
        url = storage.presign_put(key, mime, expires=PRESIGN_SECONDS)
    except ValidationError as exc:  # local storage has no URL to hand out
        raise ValidationError(str(exc), code="presign_unavailable") from exc
    return Presigned(key=key, url=url, headers={"Content-Type": mime}, expires_in=PRESIGN_SECONDS)


def confirm_chunk(
    conversation_id: str,
    index: int,
    key: str,
    *,
    storage: Storage,
    dispatcher: Dispatcher,
    settings: Settings,
) -> ingest.Accepted:
    announced = staged_size(conversation_id, index, key)
    existing = ingest.precheck(conversation_id, index)
    if existing is not None and existing.storage_key == key:
        return ingest.Accepted(existing, created=False)  # the same confirm again
    try:
        actual = storage.size(key)
    except NotFound:
        raise ValidationError(
            "nothing was uploaded to this key: PUT the file to the presigned URL first",
            code="not_uploaded",
        ) from None
    try:
        if actual != announced:
            raise ValidationError(
                f"the object has {actual} bytes; {announced} were announced", code="size_mismatch"
            )
        with ingest.scratch() as path, storage.open(key) as stream:
            upload = ingest.validate(stream, path, settings)
    except MinaError:
        storage.delete(key)  # refused: no row references it (checked above), leave nothing
        raise
    return ingest.admit(
        conversation_id,
        index,
        upload,
        existing,
        storage=storage,
        dispatcher=dispatcher,
        stored_key=key,
    )

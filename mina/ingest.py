"""Chunk uploads: validate, store the blob, insert the row, queue after commit.

Order matters (DESIGN §3.1): everything that can refuse the upload runs before anything is
stored, so a refused upload leaves no row and no blob. The blob is written before the row, and
the message is sent only after the row is committed; if the broker is down the row stays
`queued` and the scheduler dispatches it later.

Two ways in, one way through: a direct upload (the bytes in the request) and a presigned one
(mina.presign: the bytes already in S3) apply the same idempotency on (conversation, index),
insert the same row (`_insert_in`) and queue the same message. The API's direct upload
(`receive_direct`) runs in one transaction, from the authorization to the insert: one pooled
connection, BEGIN and COMMIT per upload; the conversation is locked only for the insert. The
blob write happens inside it (local disk: ~2 ms; with S3 a PUT, so a busy S3 deployment uses
presigned uploads or sizes the web pool to its threads: docs/scaling.md). `accept_chunk`
(in-process callers) and the presigned confirm end in `admit`, in transactions of their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mina import events, probe
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import (
    Conflict,
    NotFound,
    TooLarge,
    TransientError,
    UnsupportedMedia,
    ValidationError,
)
from mina.models import Chunk, Conversation
from mina.settings import Settings
from mina.storage import Storage

log = logging.getLogger(__name__)

EXTENSIONS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/flac": "flac",
}
_BLOCK = 1 << 16


@dataclass(frozen=True)
class Upload:
    path: Path
    size: int
    sha256: str
    mime: str
    duration: float


@dataclass(frozen=True)
class Accepted:
    chunk: Chunk
    created: bool


def chunk_key(conversation_id: str, index: int, sha256: str, mime: str) -> str:
    return f"conversations/{conversation_id}/chunks/{index:06d}-{sha256[:16]}.{EXTENSIONS[mime]}"


def spool(stream: BinaryIO, path: Path, max_bytes: int) -> tuple[Path, int, str]:
    """Copy the upload to `path`, hashing it and stopping as soon as it is too large."""
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        while block := stream.read(_BLOCK):
            size += len(block)
            if size > max_bytes:
                raise TooLarge(f"chunk is larger than {max_bytes} bytes")
            digest.update(block)
            out.write(block)
    if size == 0:
        raise UnsupportedMedia("the uploaded file is empty")
    return path, size, digest.hexdigest()


def validate(stream: BinaryIO, path: Path, settings: Settings) -> Upload:
    """Spool the upload to `path` and inspect it there."""
    spooled, size, sha = spool(stream, path, settings.max_chunk_bytes)
    return inspect(spooled, size, sha, settings)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary file for one upload's bytes, removed afterwards (one file, no directory)."""
    fd, name = tempfile.mkstemp(prefix="mina-upload-")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def inspect(path: Path, size: int, sha: str, settings: Settings) -> Upload:
    """Container by magic bytes, then its packets (truncation, the demuxer's errors); with
    `MINA_UPLOAD_DECODE_CHECK=request` (not the default) a decode of the whole file too."""
    with path.open("rb") as fh:
        mime = probe.sniff(fh.read(64))
    if mime is None:
        raise UnsupportedMedia("not an audio container we accept (webm, ogg, wav, mp3, m4a, flac)")
    duration = probe.probe(
        path,
        max_seconds=settings.max_chunk_seconds,
        decode=settings.upload_decode_check == "request",
    )
    return Upload(path, size, sha, mime, duration)


def check_index(index: int | str | None, settings: Settings) -> int:
    # ASCII digits only: int() alone also takes " 3", "+4", "5_0" (50) and other scripts' digits.
    text = str(index)
    if not (isinstance(index, int) or (text.isascii() and text.lstrip("-").isdigit())):
        raise ValidationError("index must be an integer", code="bad_index")
    try:
        value = int(text)
    except ValueError:  # more digits than Python converts
        raise ValidationError("index must be an integer", code="bad_index") from None
    if not 0 <= value <= settings.max_index:
        raise ValidationError(f"index must be between 0 and {settings.max_index}", code="bad_index")
    return value


def _ensure_accepting(conv: Conversation, index: int) -> None:
    if conv.is_all_chunks_transcribed:  # the barrier passed: a new chunk would be ignored
        raise Conflict(
            "the conversation's transcription is complete; no more chunks are accepted",
            code="finished",
        )
    if not conv.is_finished:
        return
    if conv.expected_chunks is not None and index < conv.expected_chunks:
        return  # a late chunk the finish call announced
    raise Conflict("the conversation is finished; no more chunks are accepted", code="finished")


def _existing(session: Session, conversation_id: str, index: int) -> Chunk | None:
    return session.scalars(
        select(Chunk).where(Chunk.conversation_id == conversation_id, Chunk.index == index)
    ).first()


def _same_or_conflict(chunk: Chunk, sha256: str) -> Accepted:
    if chunk.sha256 != sha256:
        raise Conflict(
            f"chunk {chunk.index} was already uploaded with other content", code="index_taken"
        )
    return Accepted(chunk, created=False)


def precheck(conversation_id: str, index: int) -> Chunk | None:
    """The chunk already at this index, if any; refuses an unknown or finished conversation."""
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound(f"conversation {conversation_id} not found")
        return precheck_in(session, conv, index)


def precheck_in(session: Session, conv: Conversation, index: int) -> Chunk | None:
    """`precheck` on a conversation the caller loaded in its own transaction."""
    existing = _existing(session, conv.id, index)
    if existing is None:
        _ensure_accepting(conv, index)
    return existing


def accept_chunk(
    conversation_id: str,
    index: int,
    stream: BinaryIO,
    *,
    storage: Storage,
    dispatcher: Dispatcher,
    settings: Settings,
) -> Accepted:
    existing = precheck(conversation_id, index)
    return receive(
        conversation_id,
        index,
        stream,
        existing,
        storage=storage,
        dispatcher=dispatcher,
        settings=settings,
    )


def receive(
    conversation_id: str,
    index: int,
    stream: BinaryIO,
    existing: Chunk | None,
    *,
    storage: Storage,
    dispatcher: Dispatcher,
    settings: Settings,
) -> Accepted:
    """`accept_chunk` after its precheck: `existing` is what `precheck` found at the index."""
    with scratch() as path:
        upload = validate(stream, path, settings)
        return admit(
            conversation_id, index, upload, existing, storage=storage, dispatcher=dispatcher
        )


#: What a direct upload reads first in its transaction: the conversation (authorized), the
#: index and the file's stream, refusing the request with a MinaError if any is wrong.
Opener = Callable[[Session], tuple[Conversation, int, BinaryIO]]


def receive_direct(
    open_request: Opener, *, storage: Storage, dispatcher: Dispatcher, settings: Settings
) -> Accepted:
    """A direct upload in one transaction: `open_request` authorizes the conversation and reads
    the index and the file, the index's chunk is looked up, the file spooled and checked, the
    blob stored and the row inserted under the conversation's lock (taken only then: the checks
    before it take no lock); queued after the commit. One pooled connection, BEGIN and COMMIT
    per upload. Same outcomes as `accept_chunk`: a refused upload leaves no row and no blob, an
    upload that loses the race for its index to the same bytes gets that chunk, to other bytes
    a 409.
    """
    stored: str | None = None
    try:
        try:
            with scratch() as path, session_scope() as session:
                conv, index, stream = open_request(session)
                conversation_id = conv.id
                existing = precheck_in(session, conv, index)
                upload = validate(stream, path, settings)
                if existing is not None:
                    return _same_or_conflict(existing, upload.sha256)
                stored = chunk_key(conversation_id, index, upload.sha256, upload.mime)
                storage.put_file(stored, upload.path)
                accepted = _insert_in(session, conversation_id, index, upload, stored)
        except IntegrityError:
            # Another upload of the same index committed first (this transaction is gone).
            raced = _raced(conversation_id, index, upload.sha256)
            if raced is None:
                raise
            accepted = raced
    except BaseException:
        if stored is not None:
            _drop_unreferenced(storage, stored)
        raise
    if accepted.created:
        enqueue(dispatcher, [accepted.chunk.id], conversation_id)
    return accepted


def admit(
    conversation_id: str,
    index: int,
    upload: Upload,
    existing: Chunk | None,
    *,
    storage: Storage,
    dispatcher: Dispatcher,
    stored_key: str | None = None,
) -> Accepted:
    """The end both upload paths share: same bytes → the existing chunk, other bytes → 409,
    else store the blob (unless `stored_key` already holds it), insert the row, queue it.

    A blob at `stored_key` that no row ends up referencing is deleted: refused uploads leave
    nothing behind.
    """
    if existing is not None:
        try:
            return _same_or_conflict(existing, upload.sha256)
        finally:
            if stored_key is not None and stored_key != existing.storage_key:
                _drop_unreferenced(storage, stored_key)
    key = stored_key or chunk_key(conversation_id, index, upload.sha256, upload.mime)
    if stored_key is None:
        storage.put_file(key, upload.path)
    try:
        accepted = _insert(conversation_id, index, upload, key)
    except BaseException:
        _drop_unreferenced(storage, key)
        raise
    if accepted.created:
        enqueue(dispatcher, [accepted.chunk.id], conversation_id)
    elif stored_key is not None:
        _drop_unreferenced(storage, stored_key)  # lost a race to an upload of the same bytes
    return accepted


def _insert(conversation_id: str, index: int, upload: Upload, key: str) -> Accepted:
    try:
        with session_scope() as session:
            return _insert_in(session, conversation_id, index, upload, key)
    except IntegrityError:
        raced = _raced(conversation_id, index, upload.sha256)
        if raced is None:
            raise
        return raced


def _insert_in(
    session: Session, conversation_id: str, index: int, upload: Upload, key: str
) -> Accepted:
    """The row and its event, under the conversation's lock (read fresh: a finish may have
    committed since the caller's checks). IntegrityError if another upload took the index."""
    conv = events.lock(session, conversation_id)
    if conv is None:  # deleted (erasure) since the caller read it
        raise NotFound(f"conversation {conversation_id} not found")
    _ensure_accepting(conv, index)
    now = utcnow()
    chunk = Chunk(
        conversation_id=conversation_id,
        index=index,
        sha256=upload.sha256,
        size=upload.size,
        mime=upload.mime,
        storage_key=key,
        duration=upload.duration,
        queued_at=now,
    )
    session.add(chunk)
    conv.last_activity_at = now
    session.flush()
    events.record(
        session,
        conversation_id,
        "chunk_received",
        {"chunk_id": chunk.id, "index": index, "duration": upload.duration},
    )
    log.info("conversation %s: chunk %d received (%d bytes)", conversation_id, index, upload.size)
    return Accepted(chunk, created=True)


def _raced(conversation_id: str, index: int, sha256: str) -> Accepted | None:
    """After an IntegrityError: if another upload of the same index won the race, its row
    (same bytes) or a 409 (other bytes); None if no chunk holds the index (another cause)."""
    with session_scope() as session:
        other = _existing(session, conversation_id, index)
    return None if other is None else _same_or_conflict(other, sha256)


def _drop_unreferenced(storage: Storage, key: str) -> None:
    with session_scope() as session:
        referenced = session.scalar(select(Chunk.id).where(Chunk.storage_key == key).limit(1))
    if referenced is None:
        storage.delete(key)


def enqueue(dispatcher: Dispatcher, chunk_ids: list[str], conversation_id: str) -> bool:
    """Send after commit; a broker outage leaves the rows `queued` for the scheduler."""
    try:
        dispatcher.transcribe(chunk_ids)
        return True
    except TransientError as exc:
        log.warning(
            "conversation %s: broker unreachable, %d chunk(s) left queued for the scheduler: %s",
            conversation_id,
            len(chunk_ids),
            exc,
        )
        return False

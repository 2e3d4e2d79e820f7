"""The audio blobs of one conversation (the layouts of `mina.blobs`): chunk uploads, the merged
recording, normalized audio and features, and a chunk's pieces."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from mina.models import Chunk, Conversation
from mina.storage import Storage

log = logging.getLogger(__name__)


def keys(session: Session, storage: Storage, conv: Conversation) -> set[str]:
    """Every stored key of the conversation: those its rows reference and whatever lies under
    its prefixes (a normalized file, features, pieces of a chunk)."""
    chunks = session.execute(
        select(Chunk.id, Chunk.storage_key).where(Chunk.conversation_id == conv.id)
    ).all()
    found = {key for _, key in chunks if key}
    if conv.merged_audio_key:
        found.add(conv.merged_audio_key)
    found |= {b.key for b in storage.list(f"conversations/{conv.id}/")}
    for chunk_id, _ in chunks:
        found |= {b.key for b in storage.list(f"pieces/{chunk_id}/")}
    return found


def delete(storage: Storage, conversation_id: str, found: set[str]) -> int:
    """Delete `found` (a missing key is no error: deleting again is safe); returns how many."""
    for key in sorted(found):
        storage.delete(key)
    log.info("conversation %s: %d audio blob(s) deleted", conversation_id, len(found))
    return len(found)

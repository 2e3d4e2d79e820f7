"""Orphan blobs: which stored keys a row references, and the sweep that deletes the others.

Only the layouts Mina writes are swept; any other key under these prefixes is left alone:

    conversations/{conversation_id}/chunks/{file}   referenced by `chunk.storage_key`
    conversations/{conversation_id}/merged.{ext}    referenced by `conversation.merged_audio_key`
    pieces/{chunk_id}/{file}                         referenced while that chunk is `processing`
    conversations/{conversation_id}/normalized/{file}
    conversations/{conversation_id}/features/{file}
                                                     referenced until the conversation's
                                                     post-processing is over (merge and diarize
                                                     read them; kept only when those never ran:
                                                     all chunks failed, or a task failed before
                                                     deleting)

A blob younger than `blob_grace_seconds` is never deleted (an upload whose row is not committed
yet, a presigned upload not confirmed yet), nor one a row references, however old.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from mina.db import session_scope
from mina.models import Chunk, Conversation
from mina.pipeline.chunk_state import PROCESSING
from mina.pipeline.conversation_state import PENDING, RUNNING
from mina.settings import Settings
from mina.storage import Storage

log = logging.getLogger(__name__)

PREFIXES = ("conversations/", "pieces/")
_CHUNK = re.compile(r"conversations/([^/]+)/chunks/[^/]+")
_MERGED = re.compile(r"conversations/([^/]+)/merged\.[A-Za-z0-9]+")
_PIECE = re.compile(r"pieces/([^/]+)/[^/]+")
_NORMALIZED = re.compile(r"conversations/([^/]+)/(?:normalized|features)/[^/]+")
_CHECK_EVERY = 500  # keys per reference query


def sweepable(key: str) -> bool:
    return any(p.fullmatch(key) for p in (_CHUNK, _MERGED, _PIECE, _NORMALIZED))


def referenced(keys: Iterable[str]) -> set[str]:
    """The keys among `keys` that a row references now."""
    keys = list(keys)
    chunk_keys = [k for k in keys if _CHUNK.fullmatch(k)]
    merged_keys = [k for k in keys if _MERGED.fullmatch(k)]
    pieces = {k: m.group(1) for k in keys if (m := _PIECE.fullmatch(k))}
    normalized = {k: m.group(1) for k in keys if (m := _NORMALIZED.fullmatch(k))}
    found: set[str] = set()
    with session_scope() as session:
        if chunk_keys:
            found |= set(
                session.scalars(select(Chunk.storage_key).where(Chunk.storage_key.in_(chunk_keys)))
            )
        if merged_keys:
            # By the conversation's id in the key (the primary key), not by the key column,
            # which has no index: a scan of every conversation per batch otherwise.
            wanted = set(merged_keys)
            owners = {m.group(1) for k in wanted if (m := _MERGED.fullmatch(k))}
            found |= {
                k
                for k in session.scalars(
                    select(Conversation.merged_audio_key).where(Conversation.id.in_(owners))
                )
                if k in wanted
            }
        if pieces:
            busy = set(
                session.scalars(
                    select(Chunk.id).where(
                        Chunk.id.in_(set(pieces.values())), Chunk.status == PROCESSING
                    )
                )
            )
            found |= {k for k, chunk_id in pieces.items() if chunk_id in busy}
        if normalized:
            open_ = set(
                session.scalars(
                    select(Conversation.id).where(
                        Conversation.id.in_(set(normalized.values())),
                        Conversation.processing_status.in_((PENDING, RUNNING)),
                    )
                )
            )
            found |= {k for k, cid in normalized.items() if cid in open_}
    return found


def sweep(storage: Storage, now: datetime, settings: Settings, *, limit: int) -> int:
    """Delete at most `limit` unreferenced blobs older than the grace period; returns how many."""
    cutoff = now - timedelta(seconds=settings.blob_grace_seconds)
    deleted = 0
    candidates: list[str] = []
    for prefix in PREFIXES:
        for blob in storage.list(prefix):
            if blob.modified > cutoff or not sweepable(blob.key):
                continue
            candidates.append(blob.key)
            if len(candidates) >= _CHECK_EVERY:
                deleted += _delete_orphans(storage, candidates, cutoff, limit - deleted)
                candidates = []
                if deleted >= limit:
                    return deleted
    if candidates:
        deleted += _delete_orphans(storage, candidates, cutoff, limit - deleted)
    return deleted


def _delete_orphans(storage: Storage, keys: list[str], cutoff: datetime, room: int) -> int:
    refs = referenced(keys)
    deleted = 0
    for key in keys:
        if deleted >= room:
            break
        if key in refs or not _still_old(storage, key, cutoff):
            continue
        storage.delete(key)
        owner = key.split("/")[1]
        log.info("orphan blob %s deleted (%s %s: no row references it)", key, _kind(key), owner)
        deleted += 1
    return deleted


def _still_old(storage: Storage, key: str, cutoff: datetime) -> bool:
    """Look again just before deleting: the same bytes uploaded again rewrite the same key."""
    return any(b.key == key and b.modified <= cutoff for b in storage.list(key))


def _kind(key: str) -> str:
    return "chunk" if key.startswith("pieces/") else "conversation"

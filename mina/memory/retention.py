"""Audio retention (docs/memory.md): with `MINA_AUDIO_RETENTION_DAYS` set, the scheduler deletes
the audio of conversations revealed that many days ago (chunk uploads, the merged recording and
whatever else lies under the conversation's prefix) and keeps the rest: transcript, results,
notes, search index, ledger.

A conversation is pruned once: an `audio_erasure` row marks it, written with an `audio_deleted`
event after its blobs are gone (a crash in between deletes again, harmlessly). A conversation
in progress (post-processing pending or running, e.g. an operator's retry) is never touched.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, select

from mina import events
from mina.db import session_scope, utcnow
from mina.errors import NotFound
from mina.memory import blobs
from mina.memory.models import AudioErasure
from mina.models import Conversation
from mina.pipeline.conversation_state import PENDING, RUNNING
from mina.settings import Settings
from mina.storage import Storage

log = logging.getLogger(__name__)

RETENTION = "retention"


def due(now: datetime, days: int, limit: int) -> list[str]:
    """Conversations revealed at least `days` ago, settled, whose audio is still kept."""
    cutoff = now - timedelta(days=days)
    with session_scope() as s:
        return list(
            s.scalars(
                select(Conversation.id)
                .where(
                    Conversation.revealed_at.is_not(None),
                    Conversation.revealed_at <= cutoff,
                    Conversation.processing_status.not_in((PENDING, RUNNING)),
                    ~exists().where(AudioErasure.conversation_id == Conversation.id),
                )
                .order_by(Conversation.revealed_at)
                .limit(limit)
            )
        )


def prune(storage: Storage, settings: Settings, now: datetime | None = None) -> int:
    """One run of the retention job; returns how many conversations lost their audio."""
    days = settings.audio_retention_days
    if not days:
        return 0
    now = now or utcnow()
    pruned = 0
    for cid in due(now, days, settings.scheduler_batch_size):
        if prune_one(storage, cid, days, now):
            pruned += 1
    return pruned


def prune_one(storage: Storage, conversation_id: str, days: int, now: datetime) -> bool:
    with session_scope() as s:
        conv = s.scalars(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update(skip_locked=True)
        ).first()
        if (
            conv is None
            or conv.revealed_at is None
            or conv.revealed_at > now - timedelta(days=days)
            or conv.processing_status in (PENDING, RUNNING)
            or s.get(AudioErasure, conversation_id) is not None
        ):
            return False  # changed since it was picked, or another run holds it
        count = blobs.delete(storage, conversation_id, blobs.keys(s, storage, conv))
        conv.merged_audio_key = None
        s.add(AudioErasure(conversation_id=conversation_id, blobs=count, reason=RETENTION))
        events.record(
            s, conversation_id, "audio_deleted", {"reason": RETENTION, "days": days, "blobs": count}
        )
    log.info(
        "conversation %s: audio deleted after %d days (%d blobs)", conversation_id, days, count
    )
    return True


def erased_audio(conversation_id: str) -> None:
    """Raise NotFound (`audio_erased`) when retention deleted the conversation's audio."""
    with session_scope() as s:
        row = s.get(AudioErasure, conversation_id)
        if row is not None:
            raise NotFound(
                f"the audio of this conversation was deleted on {row.erased_at:%Y-%m-%d} "
                f"({row.reason}); the transcript and results are kept",
                code="audio_erased",
            )

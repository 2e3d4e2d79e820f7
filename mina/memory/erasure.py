"""Erasing one conversation (docs/memory.md, `DELETE /api/conversations/{id}`): its blobs, its
rows (chunks, tasks, the ledger's events with their payloads, the search index, retention
marks: all cascade from the conversation) and the raw provider webhooks of its chunks.

Blobs go first, then the rows in one transaction: a failure in between leaves the rows, and
erasing again finishes the work. What remains is one `conversation_erased` event without a
conversation (its id and counts only), for the audit trail.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, or_, select

from mina import events
from mina.db import session_scope
from mina.errors import NotFound
from mina.memory import blobs
from mina.models import Chunk, Conversation, WebhookDelivery
from mina.storage import Storage

log = logging.getLogger(__name__)


def erase(storage: Storage, conversation_id: str) -> dict[str, int | str]:
    with session_scope() as s:
        conv = s.get(Conversation, conversation_id, with_for_update=True)
        if conv is None:
            raise NotFound(f"conversation {conversation_id} not found")
        count = blobs.delete(storage, conversation_id, blobs.keys(s, storage, conv))
        jobs = s.execute(
            select(Chunk.provider, Chunk.provider_job_id).where(
                Chunk.conversation_id == conversation_id, Chunk.provider_job_id.is_not(None)
            )
        ).all()
        webhooks = 0
        if jobs:
            gone = s.execute(
                delete(WebhookDelivery).where(
                    or_(
                        *(
                            (WebhookDelivery.provider == provider)
                            & WebhookDelivery.external_id.startswith(f"{job}:", autoescape=True)
                            for provider, job in jobs
                        )
                    )
                )
            )
            webhooks = gone.rowcount  # type: ignore[attr-defined]
        s.execute(delete(Conversation).where(Conversation.id == conversation_id))
        out: dict[str, int | str] = {
            "conversation_id": conversation_id,
            "blobs": count,
            "webhooks": webhooks,
        }
        events.record(s, None, "conversation_erased", out)
    log.info("conversation %s erased (%d blobs, %d webhooks)", conversation_id, count, webhooks)
    return out

"""Finishing a conversation: one path for the participant, the operator and the scheduler.

Marks it finished (mina.pipeline.conversation_state), then queues a group of
`transcribe_chunk` over every chunk that is not yet terminal with the barrier as completion
callback. When nothing is pending, or the broker cannot be reached, the barrier runs at once
(it does nothing until every chunk is terminal; the scheduler dispatches chunks left `queued`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mina import conversations
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import Conflict, TransientError, ValidationError
from mina.models import Chunk
from mina.pipeline import barrier, chunk_state, conversation_state

log = logging.getLogger(__name__)


def finish_conversation(
    conversation_id: str,
    expected: int | None,
    dispatcher: Dispatcher,
    *,
    idle_before: datetime | None = None,
) -> dict[str, Any]:
    """The entry point: mark finished (idempotent), then queue what is pending or settle."""
    with session_scope() as session:
        outcome = mark_finished(session, conversation_id, expected, idle_before=idle_before)
        conv = conversations.get(session, conversation_id)
        out: dict[str, Any] = {
            "id": conv.id,
            "status": conv.status,
            "is_finished": conv.is_finished,
            "expected_chunks": conv.expected_chunks,
            "changed": outcome.changed,
        }
    if not outcome.changed:
        return out
    if outcome.pending_chunk_ids:
        try:
            dispatcher.transcribe_and_settle(conversation_id, outcome.pending_chunk_ids)
            return out
        except TransientError as exc:
            log.warning("conversation %s: finish group not queued: %s", conversation_id, exc)
    barrier.settle(conversation_id, dispatcher)
    return out


@dataclass(frozen=True)
class FinishOutcome:
    changed: bool
    pending_chunk_ids: list[str]


def mark_finished(
    session: Session,
    conversation_id: str,
    expected_chunks: int | None = None,
    *,
    idle_before: datetime | None = None,
) -> FinishOutcome:
    """Mark the conversation finished. Idempotent: a second call changes nothing.

    The caller commits, then queues `pending_chunk_ids` as one group whose completion callback
    runs the barrier (or runs the barrier at once when nothing is pending). `idle_before` (the
    scheduler's auto-finish) changes nothing unless the last activity is at or before it, checked
    under the row lock, so a chunk that arrives meanwhile keeps the conversation open.
    """
    conv = conversations.get(session, conversation_id, lock=True)
    if idle_before is not None and not conv.is_finished and conv.last_activity_at > idle_before:
        return FinishOutcome(False, [])
    present = sum(conversations.chunk_counts(session, conversation_id).values())
    if conv.is_finished:
        if expected_chunks is not None and expected_chunks != conv.expected_chunks:
            raise Conflict(
                f"already finished with expected_chunks={conv.expected_chunks}",
                code="already_finished",
            )
        return FinishOutcome(False, _pending(session, conversation_id))
    if expected_chunks is not None:
        if expected_chunks < 0:
            raise ValidationError("expected_chunks must be >= 0")
        if expected_chunks < present:
            raise Conflict(f"{present} chunks were already uploaded, more than {expected_chunks}")
    expected = present if expected_chunks is None else expected_chunks
    conversation_state.finish(session, conv, expected, utcnow())
    log.info("conversation %s finished, %d chunks expected", conv.id, expected)
    return FinishOutcome(True, _pending(session, conversation_id))


def _pending(session: Session, conversation_id: str) -> list[str]:
    q = select(Chunk.id).where(
        Chunk.conversation_id == conversation_id, Chunk.status.not_in(chunk_state.TERMINAL)
    )
    return list(session.scalars(q.order_by(Chunk.index)))

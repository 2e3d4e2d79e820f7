"""Finishing a conversation: one path for the participant, the operator and the scheduler.

Marks it finished, then queues a group of `transcribe_chunk` over every chunk that is not yet
terminal with the barrier as completion callback. When nothing is pending, or the broker cannot
be reached, the barrier runs at once (it does nothing until every chunk is terminal; the
scheduler dispatches chunks left `queued`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from mina import conversations
from mina.db import session_scope
from mina.dispatch import Dispatcher
from mina.errors import TransientError
from mina.pipeline import barrier

log = logging.getLogger(__name__)


def finish(
    conversation_id: str,
    expected: int | None,
    dispatcher: Dispatcher,
    *,
    idle_before: datetime | None = None,
) -> dict[str, Any]:
    with session_scope() as session:
        outcome = conversations.finish(session, conversation_id, expected, idle_before=idle_before)
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

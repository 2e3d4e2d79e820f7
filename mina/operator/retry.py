"""Operator retries: failed chunks, failed post-processing tasks, or both.

Chunks: every `failed` chunk goes back to `queued` with a fresh attempt budget (`attempts` 0,
so the scheduler's attempt cap does not fail it again at once; the last error stays on the row
until the chunk succeeds, and the previous error and attempts are kept in the `chunks_retried`
event). If the conversation was already transcribed, its transcript is about to change, so it is
**reopened** in the same transaction (mina.pipeline.conversation_state.reopen): the barrier
flag cleared, status back to `finished`,
processing back to `pending` and the post-processing rows deleted (stale results are not served,
and a late duplicate message of the old run finds no row to run). When the retried chunks are
terminal the barrier passes again through the usual path, which starts post-processing and
ends in a new reveal. A reopen is refused while post-processing runs.

Tasks: `mina.pipeline.post.retry_failed` reruns only the failed tasks; its reveal can upgrade
partial to ready.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from sqlalchemy import select

from mina import conversations, events
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import Conflict, TransientError
from mina.models import Chunk
from mina.pipeline import chunk_state, conversation_state, post
from mina.pipeline.conversation_state import RUNNING

log = logging.getLogger(__name__)

What = Literal["chunks", "tasks", "all"]


def retry(conversation_id: str, what: What, dispatcher: Dispatcher) -> dict[str, Any]:
    chunks: list[int] = []
    reopened = False
    tasks: list[str] = []
    if what in ("chunks", "all"):
        chunks, reopened = retry_chunks(conversation_id, dispatcher)
    if what == "tasks" or (what == "all" and not chunks):
        tasks = _retry_tasks(conversation_id, dispatcher, quiet=what == "all")
    if not chunks and not tasks:
        raise Conflict(f"nothing failed to retry ({what})", code="nothing_to_retry")
    with session_scope() as session:
        conv = conversations.get(session, conversation_id)
        return {
            "id": conv.id,
            "chunks": chunks,
            "tasks": tasks,
            "reopened": reopened,
            "status": conv.status,
            "processing_status": conv.processing_status,
        }


def _retry_tasks(conversation_id: str, dispatcher: Dispatcher, *, quiet: bool) -> list[str]:
    try:
        return post.retry_failed(conversation_id, dispatcher)
    except Conflict as exc:
        if quiet and exc.code == "conflict":  # "all" on a conversation not yet post-processed
            return []
        raise


def retry_chunks(conversation_id: str, dispatcher: Dispatcher) -> tuple[list[int], bool]:
    """Requeue the failed chunks; returns their indices and whether the conversation reopened."""
    with session_scope() as session:
        conv = conversations.get(session, conversation_id, lock=True)
        failed = session.scalars(
            select(Chunk)
            .where(Chunk.conversation_id == conversation_id, Chunk.status == chunk_state.FAILED)
            .order_by(Chunk.index)
        ).all()
        if not failed:
            return [], False
        reopen = conv.is_all_chunks_transcribed
        if reopen and conv.processing_status == RUNNING:
            raise Conflict(
                "post-processing is running; retry the chunks once it has revealed",
                code="running",
            )
        now = utcnow()
        retried = [
            {
                "chunk_id": c.id,
                "index": c.index,
                "previous_error": c.error,
                "previous_attempts": c.attempts,
            }
            for c in failed
        ]
        chunk_state.retry(failed, now)
        if reopen:
            conversation_state.reopen(session, conv)
        conv.last_activity_at = now
        session.flush()
        chunk_state.update_progress(session, conversation_id)
        events.record(
            session, conversation_id, "chunks_retried", {"chunks": retried, "reopened": reopen}
        )
        ids = [c.id for c in failed]
        indices = [c.index for c in failed]
        finished = conv.is_finished
    log.info(
        "conversation %s: operator retry of chunk(s) %s%s",
        conversation_id,
        indices,
        " (reopened)" if reopen else "",
    )
    try:
        if finished:  # the group's callback runs the barrier once they are terminal
            dispatcher.transcribe_and_settle(conversation_id, ids)
        else:
            dispatcher.transcribe(ids)
    except TransientError as exc:  # rows stay queued: the scheduler dispatches and settles them
        log.warning("conversation %s: retried chunks not queued: %s", conversation_id, exc)
    return indices, reopen

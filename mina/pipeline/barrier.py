"""The barrier (DESIGN §3.3): the one place that decides when `is_all_chunks_transcribed` is
set (the write itself is `conversation_state.pass_barrier`).

Called after every terminal chunk, by `/finish`, by group callbacks and by the scheduler. In one
transaction it locks the conversation row and sets the flag only if the conversation is
finished, every expected chunk exists and every chunk is terminal. The conditional update makes
exactly one caller win; the winner records `transcription_complete` and starts post-processing.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from mina import events
from mina.db import session_scope
from mina.dispatch import Dispatcher
from mina.errors import TransientError
from mina.models import Chunk
from mina.pipeline import chunk_state, conversation_state, post, seams
from mina.pipeline.conversation_state import TRANSCRIBED

log = logging.getLogger(__name__)


def settle(conversation_id: str, dispatcher: Dispatcher, *, seams_made: bool = False) -> bool:
    """Run the barrier; True for the one caller that set the flag.

    A caller that has not just made the open seams (the web's `/finish`, the scheduler, a
    group callback on the network queue) does not pass the barrier while a boundary between
    two transcribed chunks still lacks its seam: the transcript would be read without it. It
    queues `seam_and_settle` where the model is instead, which makes them (or fails to, the
    chunks' own words then stand) and passes with `seams_made=True`.
    """
    deferred = False
    status: str | None = None
    transcribed = total = 0
    with session_scope() as session:
        conv = events.lock(session, conversation_id)
        if conv is None or not conv.is_finished or conv.is_all_chunks_transcribed:
            return False
        rows = session.execute(
            select(Chunk.status, func.count())
            .where(Chunk.conversation_id == conversation_id)
            .group_by(Chunk.status)
        ).all()
        counts = {name: int(n) for name, n in rows}
        total = sum(counts.values())
        if total < (conv.expected_chunks or 0):
            return False
        if any(name not in chunk_state.TERMINAL for name in counts):
            return False
        deferred = not seams_made and seams.wanted() and seams.open_in(session, conversation_id)
        if not deferred:
            total = sum(counts.values())
            transcribed = counts.get(chunk_state.TRANSCRIBED, 0)
            status = conversation_state.pass_barrier(session, conversation_id, transcribed, total)
    if deferred:
        try:
            dispatcher.seam_and_settle(conversation_id)
        except TransientError as exc:  # the scheduler runs the barrier again
            log.warning("conversation %s: seams not queued: %s", conversation_id, exc)
        return False
    if status is None:
        return False
    log.info(
        "conversation %s: barrier passed (%s, %d/%d chunks)",
        conversation_id,
        status,
        transcribed,
        total,
    )
    if status == TRANSCRIBED:
        post.start(conversation_id, dispatcher)
    return True

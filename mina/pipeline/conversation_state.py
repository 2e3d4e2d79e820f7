"""The conversation's two state machines, and the barrier flag: every write of
`conversation.status`, `processing_status`, `is_finished` and `is_all_chunks_transcribed` is
here; no other module writes them (tests/unit/test_state_owners.py).

Transcription (`status`): recording → finished (the participant, the operator or the
scheduler's idle finish) → transcribed or transcription_failed (the barrier, once, with the
flag). Post-processing (`processing_status`): pending → running (start, once) → ready, partial
or failed (the reveal, once); an operator retry of failed tasks runs it again, and an operator
retry of failed chunks reopens a transcribed conversation (flag cleared, both machines back).

Every change is a conditional UPDATE (or a change on a row the caller locked, checked against
the tables) with its event recorded in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mina import events
from mina.db import utcnow
from mina.models import Chunk, Conversation
from mina.pipeline import task_state
from mina.pipeline.machine import Machine, Transition


class TranscriptionStatus(StrEnum):
    RECORDING = "recording"
    FINISHED = "finished"
    TRANSCRIBED = "transcribed"
    TRANSCRIPTION_FAILED = "transcription_failed"


class ProcessingStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    PARTIAL = "partial"
    FAILED = "failed"


RECORDING, FINISHED = TranscriptionStatus.RECORDING, TranscriptionStatus.FINISHED
TRANSCRIBED = TranscriptionStatus.TRANSCRIBED
TRANSCRIPTION_FAILED = TranscriptionStatus.TRANSCRIPTION_FAILED
PENDING, RUNNING = ProcessingStatus.PENDING, ProcessingStatus.RUNNING
READY, PARTIAL, FAILED = ProcessingStatus.READY, ProcessingStatus.PARTIAL, ProcessingStatus.FAILED
REVEALED = (READY, PARTIAL, FAILED)

TRANSCRIPTION = Machine(
    name="conversation: transcription",
    column="conversation.status",
    states=TranscriptionStatus,
    initial=RECORDING,
    terminal=(TRANSCRIBED, TRANSCRIPTION_FAILED),
    transitions=(
        Transition(
            "finish",
            (RECORDING,),
            (FINISHED,),
            "POST …/finish (participant or operator), or the scheduler after the idle timeout",
        ),
        Transition(
            "pass_barrier",
            (FINISHED,),
            (TRANSCRIBED, TRANSCRIPTION_FAILED),
            "the barrier: every expected chunk terminal (sets is_all_chunks_transcribed)",
        ),
        Transition(
            "reopen",
            (TRANSCRIBED, TRANSCRIPTION_FAILED),
            (FINISHED,),
            "operator retry of failed chunks (clears is_all_chunks_transcribed)",
        ),
    ),
)

PROCESSING = Machine(
    name="conversation: post-processing",
    column="conversation.processing_status",
    states=ProcessingStatus,
    initial=PENDING,
    terminal=REVEALED,
    transitions=(
        Transition(
            "start",
            (PENDING,),
            (RUNNING,),
            "the barrier's winner (or the scheduler), once the conversation is transcribed",
        ),
        Transition(
            "no_transcript", (PENDING,), (FAILED,), "the barrier passed with no transcribed chunk"
        ),
        Transition(
            "reveal",
            (RUNNING,),
            (READY, PARTIAL, FAILED),
            "every task terminal: the 3-of-4 rule decides",
        ),
        Transition("retry", REVEALED, (RUNNING,), "operator retry of failed tasks"),
        Transition(
            "reopen",
            (PENDING, *REVEALED),
            (PENDING,),
            "operator retry of failed chunks on a transcribed conversation",
        ),
    ),
)


def finish(session: Session, conv: Conversation, expected_chunks: int, now: datetime) -> None:
    """recording → finished on a row the caller locked, with `expected_chunks` decided."""
    TRANSCRIPTION.check("finish", conv.status, FINISHED)
    conv.is_finished = True
    conv.finished_at = now
    conv.last_activity_at = now
    conv.expected_chunks = expected_chunks
    conv.status = FINISHED
    events.record(session, conv.id, "conversation_finished", {"expected_chunks": expected_chunks})


def pass_barrier(
    session: Session, conversation_id: str, transcribed: int, total: int
) -> str | None:
    """Set `is_all_chunks_transcribed` (conditionally: one caller wins) with finished →
    transcribed, or → transcription_failed when no chunk was transcribed (post-processing then
    fails at once: nothing to process). The status it set, or None if it lost."""
    status = TRANSCRIBED if transcribed else TRANSCRIPTION_FAILED
    won = session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.is_all_chunks_transcribed.is_(False),
            Conversation.status.in_(TRANSCRIPTION.sources("pass_barrier")),
        )
        .values(
            is_all_chunks_transcribed=True,
            status=status,
            transcribed_at=utcnow(),
            progress=70,
            duration=select(func.coalesce(func.sum(Chunk.duration), 0.0))
            .where(Chunk.conversation_id == conversation_id)
            .scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return None
    events.record(
        session,
        conversation_id,
        "transcription_complete",
        {"status": status, "chunks": total, "transcribed": transcribed},
    )
    if status == TRANSCRIPTION_FAILED:
        reason = "no chunk could be transcribed" if total else "no audio was uploaded"
        session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.processing_status.in_(PROCESSING.sources("no_transcript")),
            )
            .values(processing_status=FAILED, error=reason, progress=100)
        )
        events.record(session, conversation_id, "post_transcription_failed", {"reason": reason})
    return status


def start(session: Session, conversation_id: str) -> bool:
    """pending → running, once, for a transcribed conversation; creates the task rows."""
    won = session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.processing_status.in_(PROCESSING.sources("start")),
            Conversation.status == TRANSCRIBED,
        )
        .values(processing_status=RUNNING)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return False
    task_state.create(session, conversation_id)
    events.record(
        session, conversation_id, "post_transcription_started", {"tasks": list(task_state.NAMES)}
    )
    return True


def reveal(session: Session, conv: Conversation, outcome: str, payload: dict[str, Any]) -> bool:
    """running → ready, partial or failed, once (conditionally), with its event."""
    if not PROCESSING.allows("reveal", RUNNING, outcome):
        raise ValueError(f"no reveal as {outcome!r}")
    won = session.execute(
        update(Conversation)
        .where(
            Conversation.id == conv.id,
            Conversation.processing_status.in_(PROCESSING.sources("reveal")),
        )
        .values(
            processing_status=outcome,
            revealed_at=utcnow(),
            reveal_count=Conversation.reveal_count + 1,
            progress=100,
        )
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return False
    name = "post_transcription_failed" if outcome == FAILED else "post_transcription_reveal"
    events.record(session, conv.id, name, payload)
    return True


def retry(session: Session, conv: Conversation, names: list[str], progress: int) -> None:
    """Revealed → running again for an operator retry of `names` (a row the caller locked)."""
    PROCESSING.check("retry", conv.processing_status, RUNNING)
    conv.processing_status = RUNNING
    conv.progress = progress
    events.record(session, conv.id, "post_transcription_started", {"tasks": names, "retry": True})


def reopen(session: Session, conv: Conversation) -> None:
    """A transcribed conversation whose failed chunks an operator retries (a row the caller
    locked): the flag cleared, transcription back to finished, post-processing back to pending
    with its rows deleted. The barrier then passes again through the usual path."""
    TRANSCRIPTION.check("reopen", conv.status, FINISHED)
    PROCESSING.check("reopen", conv.processing_status, PENDING)
    conv.is_all_chunks_transcribed = False
    conv.status = FINISHED
    conv.transcribed_at = None
    conv.processing_status = PENDING
    conv.error = None
    task_state.delete_all(session, conv.id)

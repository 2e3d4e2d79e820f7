"""State changes of one chunk: claim with a lease, complete, fail, release for a retry.

Every change is a conditional UPDATE, so a duplicate or concurrent message for the same chunk
does nothing: only the holder of the current claim (its attempt number) may finish it.

A claim's lease is short (`heartbeat_timeout_seconds`) and renewed by the worker's heartbeat
(`renew_lease`, mina.pipeline.heartbeat) up to `lease_seconds` after the claim: a dead worker's
chunk is taken back in seconds, a long chunk keeps its long limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import null as sa_null
from sqlalchemy.orm import Session

from mina import events
from mina.db import session_scope, utcnow
from mina.models import (
    CHUNK_FAILED,
    CHUNK_TERMINAL,
    CHUNK_TRANSCRIBED,
    PROCESSING,
    QUEUED,
    Chunk,
    Conversation,
)
from mina.pipeline import heartbeat
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)

TRANSIENT, PERMANENT = "transient", "permanent"


@dataclass(frozen=True)
class Claim:
    chunk_id: str
    conversation_id: str
    index: int
    attempt: int
    storage_key: str
    started_at: datetime | None = None  # when this claim was taken (the lease's cap counts from it)


def claim(chunk_id: str, settings: Settings) -> Claim | None:
    """Take the chunk if it is queued or its lease expired; None if someone else holds it."""
    now = utcnow()
    with session_scope() as session:
        taken = session.execute(
            update(Chunk)
            .where(
                Chunk.id == chunk_id,
                or_(
                    Chunk.status == QUEUED,
                    and_(Chunk.status == PROCESSING, Chunk.lease_until < now),
                ),
            )
            .values(
                status=PROCESSING,
                attempts=Chunk.attempts + 1,
                started_at=now,
                lease_until=heartbeat.first_lease(now, settings.lease_seconds, settings),
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        chunk = session.get(Chunk, chunk_id, populate_existing=True)
        assert chunk is not None
        return Claim(
            chunk.id,
            chunk.conversation_id,
            chunk.index,
            chunk.attempts,
            chunk.storage_key,
            chunk.started_at,
        )


def renew_lease(c: Claim, settings: Settings) -> bool:
    """The heartbeat: push the lease to the timeout from now (never past `lease_seconds` after
    the claim, never shorter than it is). False once the chunk is no longer this claim's."""
    now = utcnow()
    until = heartbeat.renewed_lease(now, c.started_at or now, settings.lease_seconds, settings)
    with session_scope() as session:
        renewed = session.execute(
            update(Chunk)
            .where(_mine(c), Chunk.lease_until < until)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        if renewed.rowcount == 1:  # type: ignore[attr-defined]
            return True
        return session.scalar(select(func.count()).select_from(Chunk).where(_mine(c))) == 1


def extend_lease(c: Claim, settings: Settings) -> None:
    with session_scope() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.id == c.chunk_id, Chunk.status == PROCESSING, Chunk.attempts == c.attempt)
            .values(lease_until=utcnow() + timedelta(seconds=settings.lease_seconds))
        )


def _mine(c: Claim) -> Any:
    return and_(Chunk.id == c.chunk_id, Chunk.status == PROCESSING, Chunk.attempts == c.attempt)


def complete(
    c: Claim,
    segments: list[Segment],
    duration: float | None,
    warnings: list[dict[str, Any]] | None = None,
) -> bool:
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    now = utcnow()
    with session_scope() as session:
        values: dict[str, Any] = {
            "status": CHUNK_TRANSCRIBED,
            "text": text,
            "segments": [s.model_dump(exclude_none=True) for s in segments],
            # SQL NULL, not JSON null (SQLAlchemy's JSON writes None as 'null')
            "warnings": warnings or sa_null(),
            "seam": sa_null(),  # a chunk transcribed again needs its boundaries again
            "error": None,
            "error_kind": None,
            "finished_at": now,
            "lease_until": None,
        }
        if duration is not None:
            values["duration"] = duration
        done = session.execute(update(Chunk).where(_mine(c)).values(**values))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            log.info("chunk %s: claim %d lost before completion", c.chunk_id, c.attempt)
            return False
        events.record(
            session,
            c.conversation_id,
            "chunk_transcribed",
            {
                "chunk_id": c.chunk_id,
                "index": c.index,
                "text": text,
                "segments": values["segments"],
                **({"warnings": warnings} if warnings else {}),
            },
        )
        update_progress(session, c.conversation_id)
    log.info("conversation %s: chunk %d transcribed", c.conversation_id, c.index)
    return True


def fail(c: Claim, error: str, kind: str) -> bool:
    now = utcnow()
    with session_scope() as session:
        done = session.execute(
            update(Chunk)
            .where(_mine(c))
            .values(
                status=CHUNK_FAILED, error=error, error_kind=kind, finished_at=now, lease_until=None
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return False
        events.record(
            session,
            c.conversation_id,
            "chunk_failed",
            {"chunk_id": c.chunk_id, "index": c.index, "error": error, "error_kind": kind},
        )
        update_progress(session, c.conversation_id)
    log.warning(
        "conversation %s: chunk %d failed (%s) after %d attempt(s): %s",
        c.conversation_id,
        c.index,
        kind,
        c.attempt,
        error,
    )
    return True


def release(c: Claim, error: str, *, wait_seconds: float | None = None) -> bool:
    """Give the chunk back to the queue after a transient error; the retry claims it again.

    `wait_seconds`: this try was no attempt (the provider's circuit is open), so the attempt is
    taken back, and `queued_at` is set that far ahead so the scheduler does not redispatch a
    chunk that is only waiting.
    """
    wait = wait_seconds is not None
    with session_scope() as session:
        done = session.execute(
            update(Chunk)
            .where(_mine(c))
            .values(
                status=QUEUED,
                attempts=Chunk.attempts - 1 if wait else Chunk.attempts,
                error=error,
                error_kind=TRANSIENT,
                queued_at=utcnow() + timedelta(seconds=wait_seconds or 0.0),
                lease_until=None,
            )
        )
    if wait:
        log.info("chunk %s: waits %.0fs for the provider: %s", c.chunk_id, wait_seconds, error)
    else:
        log.info(
            "chunk %s: attempt %d failed transiently, will retry: %s", c.chunk_id, c.attempt, error
        )
    return done.rowcount == 1  # type: ignore[attr-defined]


def give_up(session: Session, chunk: Chunk, reason: str) -> None:
    """Fail a chunk that is not held by anyone (the scheduler's attempt cap)."""
    chunk.status = CHUNK_FAILED
    chunk.error = reason
    chunk.error_kind = PERMANENT
    chunk.finished_at = utcnow()
    chunk.lease_until = None
    events.record(
        session,
        chunk.conversation_id,
        "chunk_failed",
        {"chunk_id": chunk.id, "index": chunk.index, "error": reason, "error_kind": PERMANENT},
    )
    update_progress(session, chunk.conversation_id)


def update_progress(session: Session, conversation_id: str) -> None:
    """Transcription fills 0-70 % of `progress`; post-processing the rest."""
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.is_all_chunks_transcribed:
        return
    base = select(func.count()).select_from(Chunk).where(Chunk.conversation_id == conversation_id)
    total = session.scalar(base) or 0
    terminal = session.scalar(base.where(Chunk.status.in_(CHUNK_TERMINAL))) or 0
    expected = max(total, conv.expected_chunks or 0)
    conv.progress = int(70 * terminal / expected) if expected else 0


def current_claim(chunk_id: str) -> Claim | None:
    """The claim a chunk is under now (for callbacks and interrupted actors), if processing."""
    with session_scope() as session:
        chunk = session.get(Chunk, chunk_id)
        if chunk is None or chunk.status != PROCESSING:
            return None
        return Claim(
            chunk.id,
            chunk.conversation_id,
            chunk.index,
            chunk.attempts,
            chunk.storage_key,
            chunk.started_at,
        )

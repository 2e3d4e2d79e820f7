"""The chunk's state machine (`chunk.status`): every transition, and every write of the lease
and provider-job fields, is here; no other module writes them (tests/unit/test_state_owners.py).

Every change is a conditional UPDATE whose condition comes from `MACHINE`, so a duplicate or
concurrent message for the same chunk does nothing: only the holder of the current claim (its
attempt number) may finish it. Changes the scheduler makes on rows it locked (`give_up`,
`requeue_stalled`) check the table too. The event of a change is recorded in its transaction.

A claim's lease is short (`heartbeat_timeout_seconds`) and renewed by the worker's heartbeat
(`renew_lease`, mina.pipeline.heartbeat) up to `lease_seconds` after the claim: a dead worker's
chunk is taken back in seconds, a long chunk keeps its long limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy import null as sa_null
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mina import events
from mina.db import session_scope, utcnow
from mina.models import Chunk, Conversation
from mina.pipeline import heartbeat
from mina.pipeline.machine import Machine, Transition
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)

TRANSIENT, PERMANENT = "transient", "permanent"  # chunk.error_kind


class ChunkStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    TRANSCRIBED = "transcribed"
    FAILED = "failed"


QUEUED, PROCESSING = ChunkStatus.QUEUED, ChunkStatus.PROCESSING
TRANSCRIBED, FAILED = ChunkStatus.TRANSCRIBED, ChunkStatus.FAILED
TERMINAL: tuple[str, ...] = (TRANSCRIBED, FAILED)
#: `conversation.progress` once every expected chunk is terminal (post-processing fills the rest).
TRANSCRIBED_SHARE = 70

MACHINE = Machine(
    name="chunk",
    column="chunk.status",
    states=ChunkStatus,
    initial=QUEUED,
    terminal=(TRANSCRIBED, FAILED),
    transitions=(
        Transition(
            "claim",
            (QUEUED, PROCESSING),
            (PROCESSING,),
            "a worker takes it; a processing chunk only once its lease expired",
        ),
        Transition(
            "complete", (PROCESSING,), (TRANSCRIBED,), "the claim's holder stores the words"
        ),
        Transition(
            "fail", (PROCESSING,), (FAILED,), "the holder: a permanent error, or the last try"
        ),
        Transition(
            "release",
            (PROCESSING,),
            (QUEUED,),
            "the holder: a transient error, or the provider's circuit is open",
        ),
        Transition(
            "requeue_stalled",
            (QUEUED, PROCESSING),
            (QUEUED,),
            "scheduler: queued too long, or its lease expired",
        ),
        Transition(
            "give_up",
            (QUEUED, PROCESSING),
            (FAILED,),
            "scheduler: the attempt cap, or a provider job without news",
        ),
        Transition("reclaim_inflight", (PROCESSING,), (QUEUED,), "start of the embedded process"),
        Transition("retry", (FAILED,), (QUEUED,), "operator retry (fresh attempt budget)"),
    ),
)


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
    with session_scope() as session:
        taken = claim_in(session, chunk_id, settings)
    return taken[0] if taken is not None else None


def claim_in(
    session: Session, chunk_id: str, settings: Settings, *also: Any
) -> tuple[Claim, tuple[Any, ...]] | None:
    """`claim` in the caller's transaction, which must commit before the claim is acted on.
    One statement: the conditional UPDATE returns the claimed row's fields, and the values of
    `also`, subqueries correlated to the chunk row (the worker reads the conversation's
    language so, `mina.languages.claim_columns`: no statement of its own)."""
    now = utcnow()
    row = session.execute(
        update(Chunk)
        .where(
            Chunk.id == chunk_id,
            Chunk.status.in_(MACHINE.sources("claim")),
            or_(Chunk.status == QUEUED, Chunk.lease_until < now),
        )
        .values(
            status=PROCESSING,
            attempts=Chunk.attempts + 1,
            started_at=now,
            lease_until=heartbeat.first_lease(now, settings.lease_seconds, settings),
        )
        .returning(
            Chunk.id,
            Chunk.conversation_id,
            Chunk.index,
            Chunk.attempts,
            Chunk.storage_key,
            Chunk.started_at,
            *also,
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        return None
    return Claim(*row[:6]), tuple(row[6:])


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
            .where(_mine(c))
            .values(lease_until=utcnow() + timedelta(seconds=settings.lease_seconds))
        )


@dataclass(frozen=True)
class Ended:
    """A chunk the claim's holder made terminal (`complete`, `fail`). `barrier_due`: the
    conversation was finished, its barrier not passed yet and every chunk it expects terminal,
    read under the conversation's lock in the same transaction. When False the holder need not
    run the barrier: a finish committed after this transaction runs the barrier itself (its
    update of the conversation row waits for the lock held here) and sees this chunk terminal;
    a chunk still in flight or missing is made terminal later under the same lock, by a holder
    that sees every chunk terminal (or by the scheduler, which settles what it ends)."""

    barrier_due: bool


def _mine(c: Claim) -> Any:
    """The chunk, still under this claim (the condition of every change its holder makes)."""
    return and_(Chunk.id == c.chunk_id, Chunk.status == PROCESSING, Chunk.attempts == c.attempt)


def complete(
    c: Claim,
    segments: list[Segment],
    duration: float | None,
    warnings: list[dict[str, Any]] | None = None,
) -> Ended | None:
    """Store the words; None if the claim was lost meanwhile."""
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    now = utcnow()
    with session_scope() as session:
        values: dict[str, Any] = {
            "status": TRANSCRIBED,
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
            return None
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
        due = update_progress(session, c.conversation_id)
    log.info("conversation %s: chunk %d transcribed", c.conversation_id, c.index)
    return Ended(due)


def fail(c: Claim, error: str, kind: str) -> Ended | None:
    """Fail the chunk for good; None if the claim was lost meanwhile."""
    now = utcnow()
    with session_scope() as session:
        done = session.execute(
            update(Chunk)
            .where(_mine(c))
            .values(status=FAILED, error=error, error_kind=kind, finished_at=now, lease_until=None)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        events.record(
            session,
            c.conversation_id,
            "chunk_failed",
            {"chunk_id": c.chunk_id, "index": c.index, "error": error, "error_kind": kind},
        )
        due = update_progress(session, c.conversation_id)
    log.warning(
        "conversation %s: chunk %d failed (%s) after %d attempt(s): %s",
        c.conversation_id,
        c.index,
        kind,
        c.attempt,
        error,
    )
    return Ended(due)


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
    """Fail a chunk the scheduler locked: the attempt cap, or a provider job without news."""
    MACHINE.check("give_up", chunk.status, FAILED)
    chunk.status = FAILED
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


def update_progress(session: Session, conversation_id: str) -> bool:
    """Transcription fills 0-70 % of `progress`; post-processing the rest. Returns whether the
    barrier may be due: the conversation is finished, has not passed it, and every chunk it
    expects is terminal (transcription's share is whole: 70).

    The conversation row is normally loaded already, under the lock `events.record` took
    (the lock this UPDATE takes), so this is one statement: the UPDATE counts the chunks
    itself, after the lock, so it sees every chunk ended before it. The progress is
    70 x terminal // max(chunks, expected), integer division (0 with nothing expected)."""
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.is_all_chunks_transcribed:
        return False
    total = func.count()
    terminal = func.coalesce(func.sum(case((Chunk.status.in_(TERMINAL), 1))), 0)
    expected = case((total > (conv.expected_chunks or 0), total), else_=conv.expected_chunks or 0)
    progress = (
        select(case((expected > 0, TRANSCRIBED_SHARE * terminal // expected), else_=0))
        .where(Chunk.conversation_id == conversation_id)
        .scalar_subquery()
    )
    now = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(progress=progress)
        .returning(Conversation.progress)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(conv, "progress", now)  # the row as written, without reading it again
    return bool(conv.is_finished) and now == TRANSCRIBED_SHARE


def current_claim(chunk_id: str) -> Claim | None:
    """The claim a chunk is under now (for callbacks and interrupted actors), if processing."""
    with session_scope() as session:
        chunk = session.get(Chunk, chunk_id)
        if chunk is None or chunk.status != PROCESSING:
            return None
        return claim_of(chunk)


def requeue_stalled(chunk: Chunk, stamp: datetime) -> None:
    """Back to `queued` (the scheduler, on a row it locked): queued too long, or its lease
    expired. `queued_at` is the stamp, so no new dispatch before the delay, whoever claims it."""
    MACHINE.check("requeue_stalled", chunk.status, QUEUED)
    chunk.status, chunk.lease_until, chunk.queued_at = QUEUED, None, stamp


def reclaim_inflight(session: Session) -> int:
    """At start of the sole embedded process nothing else can hold a lease: processing chunks
    go back to the queue. Returns how many."""
    return int(
        session.execute(
            update(Chunk)
            .where(Chunk.status.in_(MACHINE.sources("reclaim_inflight")))
            .values(status=QUEUED, lease_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )


def retry(chunks: Sequence[Chunk], now: datetime) -> None:
    """Operator retry of failed chunks (rows the caller locked): queued with a fresh attempt
    budget. The last error stays until the chunk succeeds; the caller records the event."""
    for c in chunks:
        MACHINE.check("retry", c.status, QUEUED)
        c.status = QUEUED
        c.attempts = 0
        c.queued_at = now
        c.started_at = None
        c.finished_at = None
        c.lease_until = None


def submitted(c: Claim, provider: str, job_id: str, lease_until: datetime) -> bool:
    """An async provider's job now holds the claimed chunk (it stays `processing`, its lease
    long enough for the job). False if the claim was lost meanwhile."""
    now = utcnow()
    with session_scope() as session:
        kept = session.execute(
            update(Chunk)
            .where(_mine(c))
            .values(
                provider=provider,
                provider_job_id=job_id,
                provider_submitted_at=now,
                provider_polls=0,
                lease_until=lease_until,
            )
        )
    return kept.rowcount == 1  # type: ignore[attr-defined]


def count_poll(chunk: Chunk) -> int:
    """One more poll of the provider job holding `chunk` (a row the caller locked)."""
    chunk.provider_polls += 1
    return chunk.provider_polls


def claim_of(chunk: Chunk) -> Claim:
    return Claim(
        chunk.id,
        chunk.conversation_id,
        chunk.index,
        chunk.attempts,
        chunk.storage_key,
        chunk.started_at,
    )

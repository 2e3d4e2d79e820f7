"""Operator stats: counts by state, queue depths, and p50/p95 of the two waits users feel.

Chunk transcription time is `finished_at - started_at` of transcribed chunks (the last attempt);
finish → reveal is `revealed_at - finished_at`. Both over the latest `SAMPLES` rows, so the
query stays bounded however long the service runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mina.models import Chunk, Conversation, PostTask
from mina.operator.listing import iso, stuck_clause
from mina.pipeline import chunk_state

SAMPLES = 1000


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, Any]:
    def rounded(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "count": len(values),
        "p50": rounded(percentile(values, 0.50)),
        "p95": rounded(percentile(values, 0.95)),
    }


def _seconds(pairs: Sequence[Any]) -> list[float]:
    return [(end - start).total_seconds() for start, end in pairs if start and end]


def _counts(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column))
    return {str(k): int(n) for k, n in rows}


def stats(
    session: Session,
    now: datetime,
    stuck_seconds: float,
    queues: dict[str, Any] | None,
) -> dict[str, Any]:
    """`queues` comes from the caller (the broker is not the domain's to import)."""
    by_status = _counts(session, Conversation.status)
    stuck = session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(stuck_clause(now - timedelta(seconds=stuck_seconds)))
    )
    transcribe = session.execute(
        select(Chunk.started_at, Chunk.finished_at)
        .where(
            Chunk.status == chunk_state.TRANSCRIBED,
            Chunk.started_at.is_not(None),
            Chunk.finished_at.is_not(None),
        )
        .order_by(Chunk.finished_at.desc())
        .limit(SAMPLES)
    ).all()
    reveal = session.execute(
        select(Conversation.finished_at, Conversation.revealed_at)
        .where(Conversation.finished_at.is_not(None), Conversation.revealed_at.is_not(None))
        .order_by(Conversation.revealed_at.desc())
        .limit(SAMPLES)
    ).all()
    return {
        "conversations": {
            "total": sum(by_status.values()),
            "stuck": int(stuck or 0),
            "status": by_status,
            "processing_status": _counts(session, Conversation.processing_status),
        },
        "chunks": _counts(session, Chunk.status),
        "tasks": _counts(session, PostTask.status),
        "queues": queues,
        "timings": {
            "chunk_transcription_seconds": summary(_seconds(transcribe)),
            "finish_to_reveal_seconds": summary(_seconds(reveal)),
        },
        "generated_at": iso(now),
    }

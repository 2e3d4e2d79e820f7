"""Listing and inspecting conversations for operators.

"Activity" is the latest of `last_activity_at` (uploads, finish) and the newest ledger event, so
a conversation busy in post-processing is not idle. "Stuck": processing not terminal, something
to do (finished, or chunks uploaded), and no activity for longer than `stuck_seconds`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, union
from sqlalchemy.orm import Session, aliased

from mina import conversations
from mina.errors import ValidationError
from mina.models import Chunk, Conversation, Event, PostTask
from mina.pipeline import chunk_state, task_state
from mina.pipeline.conversation_state import (
    FAILED,
    PARTIAL,
    PENDING,
    RUNNING,
    TRANSCRIPTION_FAILED,
)

ACTIVE = (PENDING, RUNNING)
EVENTS_IN_DETAIL = 1000
LARGE_PAYLOAD_FIELDS = ("segments", "result", "text")
RESULT_TASKS = ("refinement", "analytics", "tasks", "summary")


@dataclass(frozen=True)
class ListFilter:
    status: tuple[str, ...] = ()
    processing_status: tuple[str, ...] = ()
    stuck: bool = False
    failed: bool = False
    stuck_seconds: float = 600.0
    limit: int = 50
    offset: int = 0
    cursor: str | None = None


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def activity() -> ColumnElement[datetime]:
    newest_event = (
        select(Event.created_at)
        .where(Event.conversation_id == Conversation.id)
        .order_by(Event.id.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    return case(
        (newest_event > Conversation.last_activity_at, newest_event),
        else_=Conversation.last_activity_at,
    )


def _has_work() -> ColumnElement[bool]:
    return or_(
        Conversation.is_finished.is_(True),
        exists().where(Chunk.conversation_id == Conversation.id),
    )


def stuck_clause(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        Conversation.processing_status.in_(ACTIVE),
        Conversation.status != TRANSCRIPTION_FAILED,
        # Implied by the activity test (activity is never older than last_activity_at), but an
        # index can answer it: only the candidates get their newest event looked up.
        Conversation.last_activity_at <= cutoff,
        _has_work(),
        activity() <= cutoff,
    )


def failed_clause() -> ColumnElement[bool]:
    """Failed itself, or a chunk or a task failed: one index scan each (partial indexes), not
    an OR of per-row subqueries over every conversation."""
    failed = aliased(Conversation)
    return Conversation.id.in_(
        union(
            select(failed.id).where(
                or_(
                    failed.status == TRANSCRIPTION_FAILED,
                    failed.processing_status.in_((FAILED, PARTIAL)),
                )
            ),
            select(Chunk.conversation_id).where(Chunk.status == chunk_state.FAILED),
            select(PostTask.conversation_id).where(PostTask.status == task_state.FAILED),
        )
    )


def _where(f: ListFilter, now: datetime) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if f.status:
        clauses.append(Conversation.status.in_(f.status))
    if f.processing_status:
        clauses.append(Conversation.processing_status.in_(f.processing_status))
    if f.stuck:
        clauses.append(stuck_clause(now - timedelta(seconds=f.stuck_seconds)))
    if f.failed:
        clauses.append(failed_clause())
    return clauses


def encode_cursor(created_at: datetime, conversation_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), conversation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, cid = json.loads(raw)
        return datetime.fromisoformat(created), str(cid)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValidationError("cursor is not one this API gave out", code="bad_cursor") from exc


def list_conversations(session: Session, f: ListFilter, now: datetime) -> dict[str, Any]:
    """Newest first; keyset paging with `cursor`, else `offset`."""
    where = _where(f, now)
    total = session.scalar(select(func.count()).select_from(Conversation).where(*where)) or 0
    q = select(Conversation, activity().label("activity")).where(*where)
    if f.cursor:
        at, cid = decode_cursor(f.cursor)
        q = q.where(
            or_(
                Conversation.created_at < at,
                and_(Conversation.created_at == at, Conversation.id < cid),
            )
        )
    else:
        q = q.offset(f.offset)
    q = q.order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(f.limit + 1)
    found = session.execute(q).all()
    page, more = found[: f.limit], len(found) > f.limit
    ids = [conv.id for conv, _ in page]
    counts = _chunk_counts(session, ids)
    failed = _failed_tasks(session, ids)
    rows = [
        row(conv, act, counts.get(conv.id, {}), failed.get(conv.id, []), now, f.stuck_seconds)
        for conv, act in page
    ]
    last = page[-1][0] if page and more else None
    return {
        "conversations": rows,
        "total": int(total),
        "limit": f.limit,
        "offset": 0 if f.cursor else f.offset,
        "next_cursor": encode_cursor(last.created_at, last.id) if last is not None else None,
    }


def _chunk_counts(session: Session, ids: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    if not ids:
        return out
    q = (
        select(Chunk.conversation_id, Chunk.status, func.count())
        .where(Chunk.conversation_id.in_(ids))
        .group_by(Chunk.conversation_id, Chunk.status)
    )
    for cid, status, n in session.execute(q):
        out.setdefault(cid, {})[status] = int(n)
    return out


def _failed_tasks(session: Session, ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    q = (
        select(PostTask.conversation_id, PostTask.name)
        .where(PostTask.conversation_id.in_(ids), PostTask.status == task_state.FAILED)
        .order_by(PostTask.id)
    )
    for cid, name in session.execute(q):
        out.setdefault(cid, []).append(name)
    return out


def row(
    conv: Conversation,
    act: datetime | None,
    counts: dict[str, int],
    failed_tasks: list[str],
    now: datetime,
    stuck_seconds: float,
) -> dict[str, Any]:
    act = act or conv.last_activity_at
    total = sum(counts.values())
    stuck = (
        conv.processing_status in ACTIVE
        and conv.status != TRANSCRIPTION_FAILED
        and (conv.is_finished or total > 0)
        and act <= now - timedelta(seconds=stuck_seconds)
    )
    chunk_view = {"total": total, "queued": 0, "processing": 0, "transcribed": 0, "failed": 0}
    chunk_view.update(counts)
    return {
        "id": conv.id,
        "title": conv.title,
        "status": conv.status,
        "processing_status": conv.processing_status,
        "progress": conv.progress,
        "is_finished": conv.is_finished,
        "expected_chunks": conv.expected_chunks,
        "chunks": chunk_view,
        "failed_tasks": failed_tasks,
        "created_at": iso(conv.created_at),
        "last_activity_at": iso(act),
        "revealed_at": iso(conv.revealed_at),
        "reveal_count": conv.reveal_count,
        "age_seconds": round((now - conv.created_at).total_seconds(), 1),
        "idle_seconds": round((now - act).total_seconds(), 1),
        "stuck": stuck,
    }


def detail(
    session: Session, conversation_id: str, now: datetime, stuck_seconds: float
) -> dict[str, Any]:
    conv = conversations.get(session, conversation_id)
    act = session.scalar(select(activity()).where(Conversation.id == conversation_id))
    chunks = session.scalars(
        select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
    ).all()
    tasks = session.scalars(
        select(PostTask).where(PostTask.conversation_id == conversation_id).order_by(PostTask.id)
    ).all()
    newest = session.scalars(
        select(Event)
        .where(Event.conversation_id == conversation_id)
        .order_by(Event.id.desc())
        .limit(EVENTS_IN_DETAIL)
    ).all()
    counts: dict[str, int] = {}
    for c in chunks:
        counts[c.status] = counts.get(c.status, 0) + 1
    failed = [t.name for t in tasks if t.status == task_state.FAILED]
    view = row(conv, act, counts, failed, now, stuck_seconds)
    view.update(
        finished_at=iso(conv.finished_at),
        transcribed_at=iso(conv.transcribed_at),
        duration=conv.duration,
        language=conv.language,
        error=conv.error,
        is_all_chunks_transcribed=conv.is_all_chunks_transcribed,
    )
    done = {t.name for t in tasks if t.status == task_state.DONE}
    return {
        "conversation": view,
        "chunks": [_chunk(c) for c in chunks],
        "tasks": [_task(t) for t in tasks],
        "events": [_event(e) for e in reversed(newest)],
        "results": {
            "transcript": any(c.status == chunk_state.TRANSCRIBED for c in chunks),
            **{name: name in done for name in RESULT_TASKS},
            "audio": "merge" in done and conv.merged_audio_key is not None,
        },
    }


def _chunk(c: Chunk) -> dict[str, Any]:
    seconds = None
    if c.status == chunk_state.TRANSCRIBED and c.started_at and c.finished_at:
        seconds = round((c.finished_at - c.started_at).total_seconds(), 3)
    return {
        "id": c.id,
        "index": c.index,
        "status": c.status,
        "attempts": c.attempts,
        "error": c.error,
        "error_kind": c.error_kind,
        "duration": c.duration,
        "size": c.size,
        "mime": c.mime,
        "created_at": iso(c.created_at),
        "queued_at": iso(c.queued_at),
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "transcribe_seconds": seconds,
        "warnings": c.warnings or [],
    }


def _task(t: PostTask) -> dict[str, Any]:
    return {
        "name": t.name,
        "status": t.status,
        "attempts": t.attempts,
        "error": t.error,
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "duration_ms": t.duration_ms,
    }


def _event(e: Event) -> dict[str, Any]:
    payload = dict(e.payload or {})
    omitted = [k for k in LARGE_PAYLOAD_FIELDS if k in payload]
    for k in omitted:
        del payload[k]
    return {
        "id": e.id,
        "type": e.type,
        "created_at": iso(e.created_at),
        "emitted_at": iso(e.emitted_at),
        "payload": payload,
        "omitted": omitted,
    }

"""Conversations: creation, tokens, authorization and the status view (finishing one:
mina.pipeline.finish; its states: mina.pipeline.conversation_state)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mina import events
from mina.errors import Forbidden, NotFound, Unauthorized
from mina.models import Chunk, Conversation, PostTask
from mina.pipeline.chunk_state import FAILED as CHUNK_FAILED

log = logging.getLogger(__name__)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    session: Session, title: str | None = None, language: str | None = None
) -> tuple[Conversation, str]:
    """A new conversation; `language` is its spoken language, None to detect it (auto)."""
    token = secrets.token_urlsafe(24)
    conv = Conversation(
        title=(title or "").strip()[:200], token_hash=hash_token(token), language=language
    )
    session.add(conv)
    session.flush()
    events.record(
        session, conv.id, "conversation_created", {"title": conv.title, "language": language}
    )
    log.info("conversation %s created", conv.id)
    return conv, token


@dataclass(frozen=True)
class Principal:
    """Who is calling: a participant of one conversation, or an operator."""

    operator: bool
    conversation_id: str | None = None


def check_operator(token: str | None, operator_token: str | None) -> bool:
    # Bytes: compare_digest raises TypeError on a str with non-ASCII characters (`?token=é`).
    return bool(
        token and operator_token and hmac.compare_digest(token.encode(), operator_token.encode())
    )


def authorize(
    session: Session, conversation_id: str, token: str | None, operator_token: str | None
) -> Conversation:
    """The conversation, if `token` is its participant token or the operator token."""
    if not token:
        raise Unauthorized("a bearer token is required")
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound(f"conversation {conversation_id} not found")
    if check_operator(token, operator_token):
        return conv
    if not hmac.compare_digest(conv.token_hash, hash_token(token)):
        raise Forbidden("this token does not open this conversation")
    return conv


def get(session: Session, conversation_id: str, *, lock: bool = False) -> Conversation:
    conv = session.get(Conversation, conversation_id, with_for_update=lock)
    if conv is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conv


def chunk_counts(session: Session, conversation_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Chunk.status, func.count())
        .where(Chunk.conversation_id == conversation_id)
        .group_by(Chunk.status)
    ).all()
    return {status: int(n) for status, n in rows}


def status_view(session: Session, conv: Conversation) -> dict[str, Any]:
    counts = chunk_counts(session, conv.id)
    failed = session.scalars(
        select(Chunk)
        .where(Chunk.conversation_id == conv.id, Chunk.status == CHUNK_FAILED)
        .order_by(Chunk.index)
    ).all()
    tasks = session.scalars(
        select(PostTask).where(PostTask.conversation_id == conv.id).order_by(PostTask.id)
    ).all()
    return {
        "id": conv.id,
        "title": conv.title,
        "language": conv.language,
        "status": conv.status,
        "processing_status": conv.processing_status,
        "is_finished": conv.is_finished,
        "expected_chunks": conv.expected_chunks,
        "is_all_chunks_transcribed": conv.is_all_chunks_transcribed,
        "progress": conv.progress,
        "duration": conv.duration,
        "created_at": _iso(conv.created_at),
        "last_activity_at": _iso(conv.last_activity_at),
        "finished_at": _iso(conv.finished_at),
        "transcribed_at": _iso(conv.transcribed_at),
        "revealed_at": _iso(conv.revealed_at),
        "error": conv.error,
        "chunks": {"total": sum(counts.values()), **counts},
        "failed_chunks": [
            {"index": c.index, "error": c.error, "error_kind": c.error_kind, "attempts": c.attempts}
            for c in failed
        ],
        "tasks": {
            t.name: {
                "status": t.status,
                "attempts": t.attempts,
                "error": t.error,
                "duration_ms": t.duration_ms,
            }
            for t in tasks
        },
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat() + "Z"

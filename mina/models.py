"""The tables of DESIGN §2. Schema changes go through Alembic only (migrations/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mina.db import utcnow


def new_id() -> str:
    return uuid.uuid4().hex


def _partial(name: str, column: str, where: str, sqlite_where: str | None = None) -> Index:
    """A partial index, the same on PostgreSQL and SQLite (where SQLite spells it alike)."""
    return Index(
        name,
        column,
        postgresql_where=text(where),
        sqlite_where=text(sqlite_where or where),
    )


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# The status columns' values and every change of them belong to the state machines:
# mina.pipeline.chunk_state, conversation_state and task_state (tests/unit/test_state_owners.py
# checks these defaults are their initial states).

# Event ids are BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER primary key.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class Conversation(Base):
    __tablename__ = "conversation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(24), default="recording")
    processing_status: Mapped[str] = mapped_column(String(24), default="pending")
    is_finished: Mapped[bool] = mapped_column(Boolean, default=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    expected_chunks: Mapped[int | None] = mapped_column(Integer)
    is_all_chunks_transcribed: Mapped[bool] = mapped_column(Boolean, default=False)
    transcribed_at: Mapped[datetime | None] = mapped_column(DateTime)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    revealed_at: Mapped[datetime | None] = mapped_column(DateTime)
    reveal_count: Mapped[int] = mapped_column(Integer, default=0)
    duration: Mapped[float | None] = mapped_column(Float)
    merged_audio_key: Mapped[str | None] = mapped_column(String(300))
    num_speakers: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    #: speaker label -> {"name", "confidence", "source": "conversation" | "user"}
    speaker_names: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="conversation", order_by="Chunk.index", lazy="raise_on_sql"
    )

    __table_args__ = (
        Index("ix_conversation_open_activity", "is_finished", "last_activity_at"),
        Index("ix_conversation_status", "status", "processing_status"),
        Index("ix_conversation_created", "created_at"),
        # Partial indexes (docs/scaling.md, bench/seed_scale.py): each covers the few rows a
        # scheduler job or an operator filter looks for among the many settled ones. Their
        # predicates are written as the queries write them, so the planner can prove them.
        _partial(
            "ix_conversation_awaiting_barrier",
            "last_activity_at",
            "is_finished IS true AND is_all_chunks_transcribed IS false",
            "is_finished IS 1 AND is_all_chunks_transcribed IS 0",
        ),
        _partial(
            "ix_conversation_processing_active",
            "last_activity_at",
            "processing_status IN ('pending', 'running')",
        ),
        _partial("ix_conversation_revealed", "revealed_at", "revealed_at IS NOT NULL"),
        _partial(
            "ix_conversation_failed",
            "created_at",
            "status = 'transcription_failed' OR processing_status IN ('failed', 'partial')",
        ),
    )


class Chunk(Base):
    __tablename__ = "chunk"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    duration: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_job_id: Mapped[str | None] = mapped_column(String(128))
    provider_submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    provider_polls: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[list[Any] | None] = mapped_column(JSON)
    # What operators should know, e.g. speech that could not be transcribed (docs/transcription.md)
    warnings: Mapped[list[Any] | None] = mapped_column(JSON)
    # The boundary before this chunk transcribed again across it (mina.pipeline.seams): derived
    seam: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    conversation: Mapped[Conversation] = relationship(back_populates="chunks", lazy="raise_on_sql")

    __table_args__ = (
        UniqueConstraint("conversation_id", "index", name="uq_chunk_conversation_index"),
        Index("ix_chunk_status_queued", "status", "queued_at"),
        Index("ix_chunk_status_lease", "status", "lease_until"),
        Index("ix_chunk_provider_job", "provider", "provider_job_id"),
        Index("ix_chunk_storage_key", "storage_key"),
        _partial(
            "ix_chunk_unsettled", "conversation_id", "status NOT IN ('transcribed', 'failed')"
        ),
        _partial("ix_chunk_failed", "conversation_id", "status = 'failed'"),
        _partial("ix_chunk_transcribed_finished", "finished_at", "status = 'transcribed'"),
    )


class PostTask(Base):
    __tablename__ = "post_task"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("conversation_id", "name", name="uq_post_task_conversation_name"),
        Index("ix_post_task_status_deadline", "status", "deadline_at"),
        _partial("ix_post_task_failed", "conversation_id", "status = 'failed'"),
    )


class Event(Base):
    __tablename__ = "event"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    emitted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_event_conversation_id", "conversation_id", "id"),
        Index("ix_event_unemitted", "emitted_at", "id"),
    )


class WebhookDelivery(Base):
    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("provider", "external_id", name="uq_webhook_provider_external"),
        Index("ix_webhook_status", "status", "received_at"),
    )


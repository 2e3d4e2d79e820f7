"""The tables of meeting memory (docs/memory.md). Imported by `mina.models`, so Alembic and
`Base.metadata` see them; schema changes go through Alembic only.

`utterance` is the search index: one row per segment of a revealed transcript, with the speaker
as diarization labelled it and as people see it, and on PostgreSQL a `tsvector` made with the
text search configuration of the conversation's language (GIN-indexed). On SQLite the migration
adds the FTS5 table `utterance_fts` over it, kept in step by triggers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from mina.db import utcnow
from mina.models import Base, EventId

#: tsvector on PostgreSQL; on SQLite the column stays empty (FTS5 indexes the text instead).
TsVector = TSVECTOR().with_variant(Text(), "sqlite")


class Utterance(Base):
    __tablename__ = "utterance"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    #: the label diarization gave (S1, S2, ...) and the name results show for it
    speaker: Mapped[str | None] = mapped_column(String(32))
    speaker_name: Mapped[str | None] = mapped_column(String(80))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    #: the text search configuration the row was indexed with (english, german, ..., simple)
    config: Mapped[str] = mapped_column(String(24))
    #: the conversation's created_at, copied so date filters need no join
    meeting_at: Mapped[datetime] = mapped_column(DateTime)
    tsv: Mapped[str | None] = mapped_column(TsVector)

    __table_args__ = (
        Index("ix_utterance_conversation", "conversation_id", "position"),
        Index("ix_utterance_meeting_at", "meeting_at"),
        Index("ix_utterance_tsv", "tsv", postgresql_using="gin"),
    )


class AudioErasure(Base):
    """A conversation whose audio blobs were deleted (retention or erasure); transcript kept."""

    __tablename__ = "audio_erasure"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), primary_key=True
    )
    erased_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    blobs: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(24))

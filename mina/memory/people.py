"""The tables of known speakers (docs/memory.md, "Known speakers"). Imported by `mina.models`, so
Alembic and `Base.metadata` see them; schema changes go through Alembic only.

`person` is someone whose voice Mina may recognize (`consent`: they agreed to be remembered);
`voiceprint` is one of their voices, the centroid diarization kept for the speaker they were
named as, one per meeting; `voice_match` is every meeting speaker a person's name was given to
(named there, matched at the reveal, or carried back by a rename), so that erasing a person
finds every name to take back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mina.db import utcnow
from mina.models import Base, EventId, new_id

NAMED, MATCHED, CARRIED = "named", "matched", "carried"


class Person(Base):
    __tablename__ = "person"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Voiceprint(Base):
    __tablename__ = "voiceprint"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    #: the meeting it was confirmed in; erasing that meeting erases the voiceprint too
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    speaker: Mapped[str] = mapped_column(String(32))
    #: 192 floats, unit length (`DiarizationResult.voices`)
    embedding: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("person_id", "conversation_id", name="uq_voiceprint_person_meeting"),
    )


class VoiceMatch(Base):
    __tablename__ = "voice_match"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), primary_key=True
    )
    speaker: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    similarity: Mapped[float] = mapped_column(Float)
    #: NAMED (an operator or participant), MATCHED (at the reveal), CARRIED (a rename, backwards)
    how: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_voice_match_person", "person_id"),)

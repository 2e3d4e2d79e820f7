"""Result shapes of the post-processing tasks.

Every task result is validated against one of these models before it is stored, and the same
models describe the API's answers. A provider (local, openai, simulated) that returns something
these models reject has produced invalid output.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mina.transcript import Segment


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefinementResult(_Result):
    """The transcript with cleaned text: same segments, same timings, same order."""

    segments: list[Segment]


OwnerBasis = Literal["commitment", "request", "named", "team"]


class ActionItem(_Result):
    """One action item. `owner` is shown (a person's name, a speaker label, or "team");
    `owner_speaker` is the owning speaker's label; `owner_basis` is how it was said (the
    speaker commits, someone is asked, someone is named, "we"); `addressee` is the name a
    request spoke to. Owners are decided after diarization (mina.insights.owners)."""

    text: str = Field(min_length=1)
    owner: str | None = None
    owner_speaker: str | None = None
    owner_basis: OwnerBasis | None = None
    addressee: str | None = None
    due: str | None = Field(default=None, description="ISO date, YYYY-MM-DD")
    source_time: float | None = Field(default=None, ge=0)
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("due")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return dt.date.fromisoformat(value).isoformat()


class TasksResult(_Result):
    items: list[ActionItem]
    #: Why there are no items although people spoke, e.g. rules that only know English.
    notice: str | None = None


class SummaryResult(_Result):
    title: str = Field(min_length=1)
    summary: str
    key_points: list[str]
    decisions: list[str]
    open_questions: list[str]


class SpeakerStats(_Result):
    speaker: str
    talk_seconds: float = Field(ge=0)
    share: float = Field(ge=0.0, le=1.0)
    words: int = Field(ge=0)
    wpm: float = Field(ge=0)
    turns: int = Field(ge=0)
    longest_monologue_seconds: float = Field(ge=0)
    interruptions: int = Field(ge=0)
    fillers: int = Field(ge=0)
    questions: int = Field(ge=0)


class TimelinePoint(_Result):
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    shares: dict[str, float]


class AnalyticsResult(_Result):
    duration: float = Field(ge=0)
    silence_seconds: float = Field(ge=0)
    speakers: list[SpeakerStats]
    timeline: list[TimelinePoint]


class SpeakerTurn(_Result):
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    speaker: str

    @model_validator(mode="after")
    def _ordered(self) -> SpeakerTurn:
        if self.end < self.start:
            raise ValueError("turn ends before it starts")
        return self


class DiarizationResult(_Result):
    speakers: int = Field(ge=0)
    turns: list[SpeakerTurn]
    #: label -> the speaker's centroid embedding (192 floats, unit length); docs/memory.md
    voices: dict[str, list[float]] = Field(default_factory=dict)


__all__ = [
    "ActionItem",
    "AnalyticsResult",
    "DiarizationResult",
    "RefinementResult",
    "SpeakerStats",
    "SpeakerTurn",
    "SummaryResult",
    "TasksResult",
    "TimelinePoint",
]

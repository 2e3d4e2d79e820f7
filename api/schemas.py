"""Request and response schemas: they validate requests and generate /openapi.json."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mina.insights.schemas import AnalyticsResult

# Bounds of every number a request carries: what PostgreSQL's bigint and Python's datetime hold,
# so an out-of-range value is a 400 here and never an overflow (a 500) in a query.
MAX_EVENT_ID = 2**63 - 1  # event ids are bigint
MAX_INDEX = 100_000  # chunk indexes (MINA_MAX_INDEX's default; the setting is checked too)
MAX_OFFSET = 10_000_000  # operator list paging
MAX_SECONDS = 10 * 365 * 86_400.0  # ten years: any age or idle time worth asking about
MAX_UPLOAD_BYTES = 2**40  # announced sizes (MINA_MAX_CHUNK_BYTES is checked too: 413)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_responses(*statuses: int) -> dict[str, type[ErrorResponse]]:
    """Spectree's `Resp` entries for the error statuses a route documents."""
    return {f"HTTP_{status}": ErrorResponse for status in statuses}


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class CreateConversation(Strict):
    title: str | None = Field(
        None, max_length=200, description="one line of text: no control characters (400)"
    )
    language: str | None = Field(
        None,
        max_length=8,
        description="spoken language: a Whisper code (en, es, de, …) or `auto` to detect it; "
        "default MINA_LANGUAGE",
    )

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # A title is shown in pages, Markdown notes and terminals: no newlines, no escapes.
        if value is not None and CONTROL.search(value):
            raise ValueError("control characters (U+0000-U+001F, U+007F-U+009F) are not allowed")
        return value


class ConversationCreated(BaseModel):
    id: str
    token: str = Field(description="shown once; stored hashed")
    title: str
    language: str | None = Field(description="null until detected when `auto`")
    participant_url: str
    status: str


class FinishRequest(Strict):
    expected_chunks: int | None = Field(None, ge=0, le=MAX_INDEX + 1)


class ChunkUploadForm(BaseModel):
    """multipart/form-data: `file` (the audio) and `index` (0-based sequence number)."""

    index: int = Field(ge=0, le=MAX_INDEX)
    file: bytes = Field(json_schema_extra={"format": "binary"})


class ChunkAccepted(BaseModel):
    id: str
    index: int
    status: str
    sha256: str
    size: int
    duration: float | None
    created: bool


class ConversationStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    title: str
    status: str
    processing_status: str
    is_finished: bool
    expected_chunks: int | None
    is_all_chunks_transcribed: bool
    progress: int
    chunks: dict[str, int]
    failed_chunks: list[dict[str, Any]]
    tasks: dict[str, dict[str, Any]]


class SegmentOut(BaseModel):
    start: float
    end: float
    speaker: str | None
    text: str
    chunk_index: int | None
    flag: str | None = Field(
        None, description="`inaudible`: speech that could not be transcribed (text `[inaudible]`)"
    )


class TranscriptOut(BaseModel):
    segments: list[SegmentOut]


class TranscriptQuery(BaseModel):
    format: str = Field("json", pattern="^(json|txt|srt|vtt)$")


class EventsQuery(BaseModel):
    after: int = Field(0, ge=0, le=MAX_EVENT_ID)
    limit: int = Field(500, ge=1, le=5000)


class EventOut(BaseModel):
    id: int
    type: str
    payload: dict[str, Any]
    created_at: str


class EventsOut(BaseModel):
    events: list[EventOut]


class Accepted(BaseModel):
    id: str
    status: str
    is_finished: bool
    expected_chunks: int | None


# Realtime (docs/realtime.md)


class JoinRequest(BaseModel):
    """Socket.IO `join`: a conversation's room, or `room: "operators"`."""

    conversation_id: str | None = Field(None, min_length=1, max_length=64)
    room: Literal["operators"] | None = None
    token: str | None = Field(None, max_length=500)
    after: int = Field(0, ge=0, le=MAX_EVENT_ID)


class LeaveRequest(BaseModel):
    conversation_id: str | None = Field(None, min_length=1, max_length=64)
    room: Literal["operators"] | None = None


class EventStreamQuery(BaseModel):
    """`Last-Event-ID` (header) wins over `after`; `token` if no Authorization header."""

    after: int = Field(0, ge=0, le=MAX_EVENT_ID)
    token: str | None = None


# Operator API (docs/operator-api.md)

CONVERSATION_STATUSES = ("recording", "finished", "transcribed", "transcription_failed")
PROCESSING_STATUSES = ("pending", "running", "ready", "partial", "failed")


def _csv(value: str | None, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in (value or "").split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ValueError(f"{name} must be among {', '.join(allowed)}; got {', '.join(bad)}")
    return items


class OperatorListQuery(BaseModel):
    status: str | None = Field(None, description="comma-separated conversation statuses")
    processing_status: str | None = Field(None, description="comma-separated")
    stuck: bool = Field(False, description="not terminal and idle for > stuck_seconds")
    failed: bool = Field(False, description="a failed chunk or task, or a failed/partial result")
    stuck_seconds: float | None = Field(None, gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    cursor: str | None = Field(None, max_length=300)
    token: str | None = None

    @field_validator("status")
    @classmethod
    def _statuses(cls, value: str | None) -> str | None:
        _csv(value, CONVERSATION_STATUSES, "status")
        return value

    @field_validator("processing_status")
    @classmethod
    def _processing(cls, value: str | None) -> str | None:
        _csv(value, PROCESSING_STATUSES, "processing_status")
        return value

    def statuses(self) -> tuple[str, ...]:
        return _csv(self.status, CONVERSATION_STATUSES, "status")

    def processing_statuses(self) -> tuple[str, ...]:
        return _csv(self.processing_status, PROCESSING_STATUSES, "processing_status")


class ChunkCounts(BaseModel):
    model_config = ConfigDict(extra="allow")

    total: int
    queued: int
    processing: int
    transcribed: int
    failed: int


class ConversationRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    title: str
    status: str
    processing_status: str
    progress: int
    is_finished: bool
    expected_chunks: int | None
    chunks: ChunkCounts
    failed_tasks: list[str]
    created_at: str
    last_activity_at: str | None
    revealed_at: str | None
    reveal_count: int
    age_seconds: float
    idle_seconds: float
    stuck: bool


class ConversationList(BaseModel):
    conversations: list[ConversationRow]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


class ChunkDetail(BaseModel):
    id: str
    index: int
    status: str
    attempts: int
    error: str | None
    error_kind: str | None
    duration: float | None
    size: int
    mime: str
    created_at: str | None
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    transcribe_seconds: float | None
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        description="what operators should know, e.g. {kind: inaudible, start, end, message}: "
        "speech that could not be transcribed (times in seconds within the chunk)",
    )


class TaskDetail(BaseModel):
    name: str
    status: str
    attempts: int
    error: str | None
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None


class TimelineEvent(BaseModel):
    id: int
    type: str
    created_at: str | None
    emitted_at: str | None
    payload: dict[str, Any]
    omitted: list[str] = Field(description="large payload fields left out (see …/events)")


class ConversationDetail(BaseModel):
    conversation: ConversationRow
    chunks: list[ChunkDetail]
    tasks: list[TaskDetail]
    events: list[TimelineEvent]
    results: dict[str, bool]


class Timing(BaseModel):
    count: int
    p50: float | None
    p95: float | None


class StatsOut(BaseModel):
    conversations: dict[str, Any]
    chunks: dict[str, int]
    tasks: dict[str, int]
    queues: dict[str, dict[str, int | None]] | None
    timings: dict[str, Timing]
    generated_at: str | None
    providers: dict[str, str] | None = Field(
        None, description="circuit breaker per provider: closed, half_open or open"
    )


class RetryRequest(Strict):
    what: Literal["chunks", "tasks", "all"] = "all"


class RetryOut(BaseModel):
    id: str
    chunks: list[int] = Field(description="indices of the chunks queued again")
    tasks: list[str] = Field(description="post-processing tasks queued again")
    reopened: bool
    status: str
    processing_status: str


class FinishOut(Accepted):
    changed: bool


class AnalyticsOut(AnalyticsResult):
    """The analytics task's result (`mina.insights.schemas.AnalyticsResult`) as stored."""

    model_config = ConfigDict(extra="allow")

    diarized: bool | None = Field(None, description="speakers came from diarization")

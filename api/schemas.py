"""Request and response schemas: they validate requests and generate /openapi.json."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class CreateConversation(Strict):
    title: str | None = Field(None, max_length=200)


class ConversationCreated(BaseModel):
    id: str
    token: str = Field(description="shown once; stored hashed")
    title: str
    participant_url: str
    status: str


class FinishRequest(Strict):
    expected_chunks: int | None = Field(None, ge=0, le=100_000)


class ChunkUploadForm(BaseModel):
    """multipart/form-data: `file` (the audio) and `index` (0-based sequence number)."""

    index: int = Field(ge=0)
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


class TranscriptOut(BaseModel):
    segments: list[SegmentOut]


class TranscriptQuery(BaseModel):
    format: str = Field("json", pattern="^(json|txt|srt|vtt)$")


class EventsQuery(BaseModel):
    after: int = Field(0, ge=0)
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

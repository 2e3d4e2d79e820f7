"""The providers' interfaces and result types (DESIGN §5). Providers implement them; the
pipeline uses them (mina.pipeline.transcribe, mina.pipeline.provider_jobs). Nothing here
touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from mina.transcript import Segment


@dataclass
class TranscriptionResult:
    segments: list[Segment]
    language: str | None = None
    #: True when the provider labelled speakers itself (its labels win over diarization).
    has_speakers: bool = False
    #: What operators should know about this audio (e.g. speech that could not be transcribed).
    warnings: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class Transcriber(Protocol):
    name: str

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        """Transcribe 16 kHz mono WAV. Raises TransientError or PermanentError."""
        ...


@dataclass(frozen=True)
class Webhook:
    """Where an async provider posts when its job is done, and the token it carries."""

    url: str
    token: str


@dataclass(frozen=True)
class JobStatus:
    """An async provider's answer about one job."""

    status: str  # queued, processing, completed, error
    segments: list[Segment] | None = None
    error: str | None = None


@runtime_checkable
class JobProvider(Protocol):
    """A provider that transcribes as a job: submit now, the result comes later (AssemblyAI)."""

    name: str

    def upload(self, stream: BinaryIO) -> str: ...

    def submit(self, audio_url: str, language: str | None, webhook: Webhook | None) -> str: ...

    def fetch(self, job_id: str) -> JobStatus: ...

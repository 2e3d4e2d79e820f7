"""The transcription interface and the factory that picks the configured provider."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mina.errors import ConfigurationError
from mina.settings import Settings
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


_lock = threading.Lock()
_cache: dict[str, Transcriber] = {}


def get_transcriber(settings: Settings) -> Transcriber:
    """One provider per process and name: the local model is loaded once."""
    name = settings.transcriber
    key = f"{name}:{settings.model_dump_json()}"
    with _lock:
        if key not in _cache:
            _cache[key] = _build(name, settings)
        return _cache[key]


def _build(name: str, settings: Settings) -> Transcriber:
    if name == "local":
        from mina.providers.whisper import WhisperTranscriber

        return WhisperTranscriber(settings)
    if name == "simulated":
        from mina.providers.simulated import SimulatedTranscriber

        return SimulatedTranscriber(settings)
    if name == "openai":
        from mina.providers.openai_asr import OpenAITranscriber

        return OpenAITranscriber(settings)
    if name == "assemblyai":
        from mina.providers.assemblyai import AssemblyAITranscriber

        return AssemblyAITranscriber(settings)
    raise ConfigurationError(f"unknown or unsupported transcriber {name!r}")

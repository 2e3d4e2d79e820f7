"""Providers behind small interfaces (mina.providers.base), chosen by settings (DESIGN §5):
the factories are here."""

from __future__ import annotations

import threading

from mina.errors import ConfigurationError, PermanentError
from mina.providers.base import JobProvider, Transcriber
from mina.settings import Settings

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


def job_provider(name: str, settings: Settings) -> JobProvider:
    """The async provider named `name` (a webhook or a poll names it)."""
    if name == "assemblyai":
        from mina.providers.assemblyai import AssemblyAITranscriber

        return AssemblyAITranscriber(settings)
    raise PermanentError(f"no asynchronous provider named {name!r}")

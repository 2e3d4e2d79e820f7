"""Transcription through any OpenAI-compatible `/audio/transcriptions` endpoint.

The `openai` package does the HTTP (`MINA_OPENAI_BASE_URL`, `MINA_OPENAI_API_KEY`, model
`MINA_OPENAI_TRANSCRIBE_MODEL`), asking for `verbose_json` segments with timestamps. Its own
retries are off: mina.resilience retries transient errors, counts failures for the breaker and
caps concurrent calls. Audio longer than the upload limit allows is never sent: `max_seconds`
tells the pipeline to split it into pieces first (mina.pipeline.transcribe).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai

from mina import resilience
from mina.errors import ConfigurationError, MinaError, PermanentError, TransientError
from mina.providers.base import TranscriptionResult
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)

#: Bytes per second of the 16 kHz mono 16-bit WAV the pipeline sends, and room for its header.
WAV_BYTES_PER_SECOND = 32_000
_WAV_HEADER = 4096


def make_client(settings: Settings) -> openai.OpenAI:
    key = settings.openai_api_key
    if not key:
        if not settings.openai_base_url:
            raise ConfigurationError("MINA_OPENAI_API_KEY is required for api.openai.com")
        key = "unused"  # a self-hosted OpenAI-compatible server without authentication
    return openai.OpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        timeout=settings.provider_timeout_seconds,
        max_retries=0,
    )


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return float(raw) / divisor
            except ValueError:
                return None
    return None


def classify(exc: openai.OpenAIError, what: str) -> MinaError:
    """429/5xx/timeouts/lost connections are transient; other 4xx are permanent."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientError(f"{what}: timed out")
    if isinstance(exc, openai.APIConnectionError):
        return TransientError(f"{what}: connection failed: {exc}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"{what}: HTTP {status}: {_message(exc)}"
        if status in (429, 503):
            return resilience.RateLimited(message, _retry_after(exc))
        if status >= 500 or status == 408:
            return TransientError(message)
        return PermanentError(message)
    if isinstance(exc, openai.APIResponseValidationError):
        return TransientError(f"{what}: malformed response: {exc}")
    return PermanentError(f"{what}: {exc}")


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc.message)[:300]


@contextmanager
def openai_errors(what: str) -> Iterator[None]:
    try:
        yield
    except openai.OpenAIError as exc:
        raise classify(exc, what) from exc


class OpenAITranscriber:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = make_client(settings)
        self.max_bytes = settings.openai_max_upload_bytes
        #: The longest normalized WAV under `max_bytes`: longer audio is split first.
        self.max_seconds = max(1.0, (self.max_bytes - _WAV_HEADER) / WAV_BYTES_PER_SECOND)

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        size = wav_path.stat().st_size
        if size > self.max_bytes:
            raise PermanentError(
                f"openai transcription: {size} bytes is over the upload limit of {self.max_bytes}"
            )
        lang = language or self._settings.language
        response = resilience.guard(self.name, self._settings).call(
            lambda: self._request(wav_path, lang)
        )
        segments = [
            Segment(start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip())
            for s in response.segments or []
            if s.text.strip()
        ]
        if not segments and response.text.strip():
            segments = [Segment(start=0.0, end=round(response.duration, 3), text=response.text)]
        return TranscriptionResult(segments=segments, language=response.language or lang)

    def _request(self, wav_path: Path, language: str) -> openai.types.audio.TranscriptionVerbose:
        with openai_errors("openai transcription"), wav_path.open("rb") as fh:
            return self._client.audio.transcriptions.create(
                file=(wav_path.name, fh, "audio/wav"),
                model=self._settings.openai_transcribe_model,
                response_format="verbose_json",
                timestamp_granularities=["segment"],
                language=language if language != "auto" else openai.omit,
            )

"""AssemblyAI's v2 API: an asynchronous job per chunk, finished by a webhook or a poll.

- audio: a presigned GET URL when storage is S3 (AssemblyAI downloads it), otherwise the blob is
  streamed to `POST /v2/upload` and the returned `upload_url` is used;
- `POST /v2/transcript` with `speaker_labels`, `language_code`, and `webhook_url` plus
  `webhook_auth_header_name`/`_value` when a webhook secret is configured: the header value is
  an HMAC of the chunk id under `MINA_WEBHOOK_SECRET` (mina.webhooks), so the secret itself
  never leaves and a leaked header forges nothing but that one chunk's notification;
- `GET /v2/transcript/{id}` when the webhook (or a poll) says the job ended.

Utterances become segments (times are milliseconds in the API). Their speaker letters are not
kept: each chunk is a separate job, so "A" in one chunk need not be "A" in the next, and Mina's
diarization of the merged audio labels speakers consistently instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx2

from mina import resilience
from mina.errors import ConfigurationError, MinaError, PermanentError, TransientError
from mina.providers.base import JobStatus, TranscriptionResult, Webhook
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)

WEBHOOK_HEADER = "X-Mina-Webhook-Token"
DONE, ERROR = "completed", "error"


def _classify(exc: httpx2.HTTPError, what: str) -> MinaError:
    if isinstance(exc, httpx2.TimeoutException):
        return TransientError(f"{what}: timed out")
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        text = exc.response.text[:300]
        message = f"{what}: HTTP {status}: {text}"
        if status == 429:
            raw = exc.response.headers.get("retry-after")
            after = float(raw) if raw and raw.replace(".", "", 1).isdigit() else None
            return resilience.RateLimited(message, after)
        if status >= 500 or status == 408:
            return TransientError(message)
        return PermanentError(message)
    return TransientError(f"{what}: {exc}")  # connection refused, reset, protocol errors


@contextmanager
def _http_errors(what: str) -> Iterator[None]:
    try:
        yield
    except httpx2.HTTPError as exc:
        raise _classify(exc, what) from exc


class AssemblyAITranscriber:
    name = "assemblyai"
    #: Jobs take whole chunks: the pipeline never splits for this provider.
    max_seconds: float | None = None

    def __init__(self, settings: Settings) -> None:
        if not settings.assemblyai_api_key:
            raise ConfigurationError("MINA_ASSEMBLYAI_API_KEY is required for assemblyai")
        self._settings = settings
        self._http = httpx2.Client(
            base_url=settings.assemblyai_base_url.rstrip("/"),
            headers={"authorization": settings.assemblyai_api_key},
            timeout=settings.provider_timeout_seconds,
        )

    def _guarded(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            with _http_errors(f"assemblyai {what}"):
                response = self._http.request(method, path, **kwargs)
                response.raise_for_status()
                body: dict[str, Any] = response.json()
                return body

        return resilience.guard(self.name, self._settings).call(call)

    def upload(self, stream: BinaryIO) -> str:
        """Send audio bytes to `/v2/upload`; returns the `upload_url` a job can use."""
        data = stream.read()  # one chunk: at most MINA_MAX_CHUNK_BYTES
        body = self._guarded("upload", "POST", "/v2/upload", content=data)
        return str(body["upload_url"])

    def submit(self, audio_url: str, language: str | None, webhook: Webhook | None) -> str:
        """Start a job; returns its id. Safe to retry: at worst a job nobody waits for."""
        request: dict[str, Any] = {"audio_url": audio_url, "speaker_labels": True}
        lang = language or self._settings.language
        if lang and lang != "auto":
            request["language_code"] = lang
        else:
            request["language_detection"] = True
        if webhook is not None:
            request["webhook_url"] = webhook.url
            request["webhook_auth_header_name"] = WEBHOOK_HEADER
            request["webhook_auth_header_value"] = webhook.token
        body = self._guarded("submit", "POST", "/v2/transcript", json=request)
        return str(body["id"])

    def fetch(self, job_id: str) -> JobStatus:
        body = self._guarded("fetch", "GET", f"/v2/transcript/{job_id}")
        status = str(body.get("status", ""))
        if status == ERROR:
            return JobStatus(status, error=str(body.get("error") or "the job failed"))
        if status != DONE:
            return JobStatus(status)
        return JobStatus(status, segments=parse_transcript(body).segments)

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        """Synchronous use (no webhook): upload, submit, poll until the job ends."""
        with wav_path.open("rb") as fh:
            url = self.upload(fh)
        job = self.submit(url, language, None)
        deadline = time.monotonic() + self._settings.provider_job_timeout_seconds
        while time.monotonic() < deadline:
            status = self.fetch(job)
            if status.segments is not None:
                return TranscriptionResult(segments=status.segments, language=language)
            if status.status == ERROR:
                raise PermanentError(f"assemblyai job {job}: {status.error}")
            time.sleep(1.0)
        raise TransientError(f"assemblyai job {job}: no result in time")


def parse_transcript(body: dict[str, Any]) -> TranscriptionResult:
    """Segments from a completed transcript: utterances, else words in ~10 s runs, else text."""
    segments: list[Segment] = []
    for u in body.get("utterances") or []:
        text = str(u.get("text") or "").strip()
        if text:
            segments.append(Segment(start=u["start"] / 1000, end=u["end"] / 1000, text=text))
    if not segments:
        segments = _from_words(body.get("words") or [])
    text = str(body.get("text") or "").strip()
    if not segments and text:
        segments = [Segment(start=0.0, end=float(body.get("audio_duration") or 0.0), text=text)]
    return TranscriptionResult(segments=segments, language=body.get("language_code"))


def _from_words(words: list[dict[str, Any]]) -> list[Segment]:
    out: list[Segment] = []
    run: list[dict[str, Any]] = []
    for word in words:
        run.append(word)
        ends_sentence = str(word.get("text", "")).endswith((".", "?", "!"))
        if ends_sentence or word["end"] - run[0]["start"] >= 10_000:
            out.append(_segment(run))
            run = []
    if run:
        out.append(_segment(run))
    return out


def _segment(run: list[dict[str, Any]]) -> Segment:
    text = " ".join(str(w.get("text", "")) for w in run).strip()
    return Segment(start=run[0]["start"] / 1000, end=run[-1]["end"] / 1000, text=text)

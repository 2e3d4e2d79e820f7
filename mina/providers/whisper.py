"""The offline transcriber: faster-whisper on the CPU with a model shipped on PyPI.

The model is loaded once per process (lazily, on first use) and shared by the worker threads;
CTranslate2 runs `num_workers` transcriptions side by side, each on `cpu_threads` threads.
Every chunk is checked against the speech Silero VAD finds (mina.coverage): nothing is skipped
silently and nothing is made up over silence. Words come with their own times.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mina import coverage, vad
from mina.audio import read_normalized, read_pcm
from mina.errors import MinaError, PermanentError
from mina.providers.base import TranscriptionResult
from mina.providers.whisper_models import model_path
from mina.settings import Settings
from mina.transcript import Segment, Word

log = logging.getLogger(__name__)

__all__ = ["WhisperTranscriber", "model_path", "threads_per_call"]

#: faster-whisper's own fallback temperatures, used when `whisper_temperature_fallback` is on.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Whisper's window: audio up to this long is one encoder pass (plus the tail's, see below).
WINDOW = 30.0
#: A chunk at most this long may leave its tail open: a cut chunk is ~30 s, give or take the
#: container's rounding (a second window for its last fraction of a second is spared too).
ONE_WINDOW = WINDOW + 1.0
#: A tail left open longer than this is decoded here after all (the seam window stays short).
MAX_TAIL = 10.0


class _SecondWindow(Exception):
    """Raised inside faster-whisper's window loop: the first window is all this call decodes."""


_calls = threading.local()


def _one_window_encode(encode: Any) -> Any:
    """`WhisperModel.encode`, refusing a second window in a call that asked for one only
    (faster-whisper decodes a window when the next segment is asked for: its encoder pass is
    the first thing the next window does, after the first window's segments were yielded)."""

    def wrapped(features: Any) -> Any:
        state = getattr(_calls, "state", None)
        if state is not None and state["yielded"] and state["tail"] <= MAX_TAIL:
            raise _SecondWindow
        return encode(features)

    return wrapped


def threads_per_call(settings: Settings) -> int:
    if settings.whisper_threads > 0:
        return settings.whisper_threads
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, settings.worker_threads))


def samples_of(wav_path: Path) -> np.ndarray:
    """A WAV's samples as float32 at 16 kHz, read here: faster-whisper's own decoder (PyAV,
    a resampler, then a full `gc.collect()` per call) held the GIL for ~0.25 s per 30 s chunk,
    stalling every other thread. A file that is not normalized WAV is decoded by ffmpeg."""
    samples = read_normalized(wav_path)
    if samples is None:
        try:
            samples = read_pcm(wav_path)
        except MinaError as exc:
            raise PermanentError(f"local transcription failed: {exc}") from exc
    return samples


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
                self._model.encode = _one_window_encode(self._model.encode)
                log.info("whisper model loaded in %.2fs", time.monotonic() - started)
            return self._model

    def warm_up(self) -> None:
        """Load the model now (e.g. in a thread at start), not when the first chunk needs it."""
        self.model()

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        """A chunk (or a chunk's piece): its tail may be left open for the seam (see
        `transcribe_samples`), when the seam step runs and a piece can only be the chunk's last."""
        s = self._settings
        opens = s.whisper_seams and s.whisper_seam_tails and s.piece_seconds > ONE_WINDOW
        return self.transcribe_samples(samples_of(wav_path), language, open_tail=opens)

    def transcribe_samples(
        self,
        samples: np.ndarray,
        language: str | None = None,
        *,
        prompt: str | None = None,
        check: bool | None = None,
        open_tail: bool = False,
    ) -> TranscriptionResult:
        """Transcribe 16 kHz mono samples; `check` (default: the setting) runs the VAD check.

        `open_tail`: audio of one window that ends inside speech (a chunk whose cut the seam
        step will transcribe again) is decoded in that window only. Whisper leaves the segment
        still open at the window's end unfinished, and faster-whisper would decode it again in
        a second window (a full 30 s encoder pass for the last few seconds, heard without
        context); instead the segments end with a marker (`flag: "open"`, no words) from where
        the words stop to the end, and the seam supplies the tail's words
        (mina.pipeline.seams, which also transcribes a tail no seam covers)."""
        lang = language or self._settings.language
        if check is None:
            check = self._settings.whisper_vad_check
        speech = vad.speech(samples) if check else None
        if speech == []:  # nothing to transcribe: no call, nothing made up
            return TranscriptionResult(segments=[], language=None if lang == "auto" else lang)
        duration = samples.size / vad.RATE
        open_tail = (
            open_tail
            and speech is not None
            and duration <= ONE_WINDOW
            and speech[-1].end > duration - 0.3
            and not vad.quiet(samples, duration, 0.1)
        )
        model = self.model()
        with self._slots:
            segments, detected, probability, tail = self._decode(
                model, samples, lang, prompt, open_tail
            )
            sure: dict[str, object] = {"language_probability": probability}  # unsure: ask again
            if speech is None:
                return TranscriptionResult(segments=segments, language=detected, extra=sure)
            if tail is not None:  # the seam covers what lies after it
                speech = [vad.Span(p.start, min(p.end, tail)) for p in speech if p.start < tail]
            found = coverage.check(
                samples, segments, speech, lambda s: self._decode(model, s, detected, None)[0]
            )
        if tail is not None:
            found.segments.append(
                Segment(start=round(tail, 3), end=round(duration, 3), text="", flag=coverage.OPEN)
            )
        if found.retried or found.dropped_words:
            log.info(
                "transcribed again %d uncovered stretch(es), dropped %d word(s) over silence, "
                "%d left inaudible",
                found.retried,
                found.dropped_words,
                len(found.warnings),
            )
        return TranscriptionResult(
            segments=found.segments, language=detected, warnings=found.warnings, extra=sure
        )

    def _decode(
        self,
        model: Any,
        samples: np.ndarray,
        lang: str,
        prompt: str | None,
        one_window: bool = False,
    ) -> tuple[list[Segment], str, float, float | None]:
        """Segments, language, its probability, and where the words stop when `one_window`
        stopped faster-whisper before a second window (else None)."""
        s = self._settings
        duration = samples.size / vad.RATE
        state = {"yielded": False, "tail": duration} if one_window else None
        kept: list[Any] = []
        tail: float | None = None
        try:
            pieces, info = model.transcribe(
                samples,
                language=lang if lang != "auto" else None,
                beam_size=s.whisper_beam_size,
                temperature=FALLBACK_TEMPERATURES if s.whisper_temperature_fallback else 0.0,
                condition_on_previous_text=s.whisper_condition_on_previous_text,
                no_speech_threshold=s.whisper_no_speech_threshold,
                initial_prompt=prompt,
                word_timestamps=True,
                vad_filter=False,
            )
            _calls.state = state
            try:
                for piece in pieces:
                    kept.append(piece)
                    if state is not None:
                        state["yielded"] = True
                        state["tail"] = duration - _last_end(kept)
            except _SecondWindow:
                tail = _last_end(kept)  # where faster-whisper would have gone on from
            finally:
                _calls.state = None
            segments = [_segment(p) for p in kept if p.text.strip()]
        except (RuntimeError, ValueError) as exc:
            raise PermanentError(f"local transcription failed: {exc}") from exc
        segments = [seg for seg in segments if seg.text]
        return segments, info.language, info.language_probability, tail


def _last_end(pieces: list[Any]) -> float:
    """Where faster-whisper's next window would start: the end of the last word (the seek it
    takes with word timestamps), else of the last segment."""
    ends = [w.end for p in pieces for w in p.words or []]
    return max(ends) if ends else max(p.end for p in pieces)


def _segment(piece: Any) -> Segment:
    words = [
        Word(
            start=round(w.start, 3),
            end=round(w.end, 3),
            text=w.word,
            probability=round(w.probability, 3),
        )
        for w in piece.words or []
        if w.word.strip()
    ]
    if not words:
        return Segment(start=round(piece.start, 3), end=round(piece.end, 3), text="", words=[])
    return coverage.with_words(
        Segment(start=round(piece.start, 3), end=round(piece.end, 3), text="", words=words), words
    )

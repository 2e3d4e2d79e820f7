"""A transcriber with set latency and fault rates, for benches, chaos tests and demos.

It does not listen: it returns one numbered sentence per five seconds of audio, so results are
plainly simulated. Faults are drawn per call from the configured rates. A call holds one of the
provider cap's slots (`MINA_PROVIDER_CONCURRENCY`, shared through Redis when configured) for
its whole latency, as a real provider's call does (mina.resilience): no more calls are in
flight than the cap allows, whatever the worker threads.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import wave
from pathlib import Path

from mina import resilience
from mina.errors import PermanentError, TransientError
from mina.providers.base import TranscriptionResult
from mina.settings import Settings
from mina.transcript import Segment


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


class SimulatedTranscriber:
    name = "simulated"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._random = random.Random(settings.sim_seed)
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def _count(self, wav_path: Path) -> int:
        digest = hashlib.sha256(wav_path.read_bytes()).hexdigest()
        with self._lock:
            self._calls[digest] = self._calls.get(digest, 0) + 1
            return self._calls[digest]

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        with resilience.guard(self.name, self._settings).slot():
            return self._call(wav_path, language)

    def _call(self, wav_path: Path, language: str | None) -> TranscriptionResult:
        s = self._settings
        time.sleep(s.sim_latency_seconds)
        if s.sim_transient_first and self._count(wav_path) <= s.sim_transient_first:
            raise TransientError("simulated transient failure (first calls for this audio)")
        roll = self._draw()
        if roll < s.sim_permanent_rate:
            raise PermanentError("simulated permanent failure")
        if roll < s.sim_permanent_rate + s.sim_transient_rate:
            raise TransientError("simulated transient failure")
        seconds = wav_seconds(wav_path)
        segments = []
        start = 0.0
        n = 1
        while start < seconds:
            end = min(seconds, start + 5.0)
            segments.append(Segment(start=start, end=end, text=f"Simulated sentence {n}."))
            start, n = end, n + 1
        return TranscriptionResult(segments=segments, language=language or s.language)

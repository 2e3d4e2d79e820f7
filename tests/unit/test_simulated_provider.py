"""The simulated transcriber takes a slot of the provider cap for its call, as a real one does."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import pytest

from mina import resilience
from mina.errors import TransientError
from mina.providers.simulated import SimulatedTranscriber
from mina.settings import Settings


def _wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setparams((1, 2, 16000, 0, "NONE", "not compressed"))
        out.writeframes(bytes(2 * int(16000 * seconds)))
    return path


def test_a_call_waits_for_a_slot_of_the_cap_and_gives_it_back(tmp_path: Path) -> None:
    settings = Settings(
        broker_url=None,
        redis_url=None,
        transcriber="simulated",
        sim_latency_seconds=1.5,
        provider_concurrency=1,
        provider_timeout_seconds=0.2,
    )
    wav = _wav(tmp_path / "chunk.wav", 12.0)
    transcriber = SimulatedTranscriber(settings)
    store = resilience.store_for(settings)
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(len(transcriber.transcribe(wav).segments))
    )
    first.start()
    deadline = time.monotonic() + 5
    while store.acquire_slot("simulated", "probe", 1, 60, time.time()):  # free: not taken yet
        store.release_slot("simulated", "probe")
        assert time.monotonic() < deadline, "the first call never took the slot"
        time.sleep(0.01)
    # the first call holds the only slot: a second call waits, then gives up as transient
    with pytest.raises(TransientError, match="all 1 provider slots stayed busy"):
        transcriber.transcribe(wav)
    first.join()
    assert results == [3]  # the first call was answered
    # and its slot was given back: the next call goes through
    fast = SimulatedTranscriber(settings.model_copy(update={"sim_latency_seconds": 0.0}))
    assert len(fast.transcribe(wav).segments) == 3

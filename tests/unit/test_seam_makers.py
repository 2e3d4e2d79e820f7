"""One maker per boundary in a process (mina.pipeline.seams._one_maker): two threads that want
the same seam, or the open tail before it, at the same time transcribe it once; the second
looks again once the first is done and finds it made."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mina.pipeline import seams
from mina.providers.base import TranscriptionResult
from mina.storage import LocalStorage
from mina.transcript import Segment


class Counting:
    """A transcriber that takes a while (so the two threads overlap) and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def transcribe_samples(
        self, samples: np.ndarray, language: str | None = None
    ) -> TranscriptionResult:
        self.calls += 1
        time.sleep(0.3)
        return TranscriptionResult(segments=[])


class NoRows:
    def get(self, *args: Any, **kwargs: Any) -> None:
        return None


@contextmanager
def no_session() -> Iterator[NoRows]:
    yield NoRows()


def side(index: int, tail: float | None = None) -> seams.Side:
    segments = [Segment(start=0.0, end=1.0, text="hello")]
    if tail is not None:
        segments.append(Segment(start=tail, end=30.0, text="", flag="open"))
    return seams.Side(f"c{index}", index, 1, 30.0, segments)


def both_at_once(work: Any) -> None:
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)


def test_two_threads_make_the_same_seam_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    left, right = side(0), side(1)
    stored: list[dict[str, Any]] = []
    transcriber = Counting()

    def make(*args: Any) -> dict[str, Any]:
        transcriber.transcribe_samples(np.zeros(16000, dtype=np.float32))
        return {"segments": []}

    def store(_left: seams.Side, _right: seams.Side, seam: dict[str, Any]) -> bool:
        stored.append(seam)
        return True

    monkeypatch.setattr(seams, "session_scope", no_session)
    monkeypatch.setattr(seams, "_open_pairs", lambda *a: [(left, right)])
    monkeypatch.setattr(seams, "_still_open", lambda *a: not stored)
    monkeypatch.setattr(seams, "make", make)
    monkeypatch.setattr(seams, "store", store)
    made: list[int] = []
    storage = LocalStorage(tmp_path)
    both_at_once(lambda: made.append(seams.repair("c", {1}, transcriber, storage, 6.0)))
    assert transcriber.calls == 1
    assert sorted(made) == [0, 1]
    assert not seams._making


def test_an_open_tail_is_not_transcribed_while_its_seam_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The chunk before the last boundary left its tail open: one thread makes the seam (which
    covers the tail), another, before the barrier, would transcribe the tail on its own."""
    left, right = side(8, tail=24.0), side(9)
    seamed: list[bool] = []
    transcriber = Counting()

    def make(*args: Any) -> dict[str, Any]:
        transcriber.transcribe_samples(np.zeros(16000, dtype=np.float32))
        return {"segments": []}

    def store(*args: Any) -> bool:
        seamed.append(True)
        return True

    monkeypatch.setattr(seams, "session_scope", no_session)
    monkeypatch.setattr(seams, "_open_pairs", lambda *a: [(left, right)] if not seamed else [])
    monkeypatch.setattr(seams, "_still_open", lambda *a: not seamed)
    monkeypatch.setattr(seams, "_open_tails", lambda *a: [left])
    monkeypatch.setattr(seams, "_tail_still_open", lambda *a: not seamed)
    monkeypatch.setattr(seams, "_samples", lambda *a: np.zeros(30 * 16000, dtype=np.float32))
    monkeypatch.setattr(seams, "make", make)
    monkeypatch.setattr(seams, "store", store)
    storage = LocalStorage(tmp_path)

    def eager() -> None:
        seams.repair("c", {9}, transcriber, storage, 6.0)

    def before_barrier() -> None:
        time.sleep(0.05)  # the seam is in flight
        seams._close_tails("c", transcriber, storage, None)

    threads = [threading.Thread(target=eager), threading.Thread(target=before_barrier)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert seamed == [True]
    assert transcriber.calls == 1  # the seam's; the tail it covers was not transcribed again


def test_a_tail_no_seam_covers_is_still_transcribed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    last = side(10, tail=1.0)
    transcriber = Counting()
    monkeypatch.setattr(seams, "session_scope", no_session)
    monkeypatch.setattr(seams, "_open_tails", lambda *a: [last])
    monkeypatch.setattr(seams, "_tail_still_open", lambda *a: True)
    monkeypatch.setattr(seams, "_samples", lambda *a: np.zeros(3 * 16000, dtype=np.float32))
    assert seams._close_tails("c", transcriber, LocalStorage(tmp_path), None) == 0  # row gone
    assert transcriber.calls == 1

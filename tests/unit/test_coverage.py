"""mina.coverage: words checked against the VAD's speech, with decoders passed in.

The decoders here stand for Whisper's two failure modes (it jumps ahead over speech, it makes
words up over silence); the real model on real audio is in test_whisper_vad.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from mina import coverage, vad
from mina.transcript import Segment, Word

RATE = vad.RATE


def seg(*words: tuple[float, float, str]) -> Segment:
    ws = [Word(start=a, end=b, text=f" {t}") for a, b, t in words]
    return coverage.with_words(Segment(start=ws[0].start, end=ws[-1].end, text=""), ws)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def test_covered_speech_is_left_alone() -> None:
    words = [seg((0.5, 0.9, "hello"), (1.0, 1.4, "there"), (1.5, 2.0, "friends"))]
    calls: list[int] = []

    def decode(samples: np.ndarray) -> list[Segment]:
        calls.append(samples.size)
        return []

    out = coverage.check(silence(3), words, [vad.Span(0.4, 2.1)], decode)
    assert out.segments == words and out.warnings == [] and calls == []


def test_skipped_speech_is_transcribed_again_and_put_in_order() -> None:
    # Whisper jumped ahead: one segment claims 0-10 s, its words only fill 8-10 s.
    jumped = Segment(
        start=0.0,
        end=10.0,
        text=" late words",
        words=[Word(start=8.2, end=8.8, text=" late"), Word(start=9.0, end=9.6, text=" words")],
    )
    seen: list[float] = []

    def decode(samples: np.ndarray) -> list[Segment]:
        seen.append(samples.size / RATE)
        return [
            seg((0.5, 1.0, "early"), (1.6, 2.4, "and"), (3.0, 3.5, "middle")),
            seg((4.2, 5.0, "more"), (5.6, 6.0, "of"), (6.5, 7.0, "words")),
        ]

    out = coverage.check(silence(10), [jumped], [vad.Span(0.2, 9.8)], decode)
    assert out.retried == 1 and len(seen) == 1
    assert 7.0 < seen[0] < 8.5  # the uncovered stretch and a margin, not the whole chunk
    text = " ".join(s.text for s in out.segments)
    assert text == "early and middle more of words late words"
    assert [s.start for s in out.segments] == sorted(s.start for s in out.segments)
    assert out.segments[-1].start == 8.2  # the jumped segment starts where its words do
    assert out.warnings == []


def test_speech_still_uncovered_is_marked_inaudible_and_warned() -> None:
    words = [seg((0.5, 1.0, "hello"))]
    out = coverage.check(silence(12), words, [vad.Span(0.4, 1.1), vad.Span(4.0, 9.0)], lambda s: [])
    flagged = [s for s in out.segments if s.flag == "inaudible"]
    assert len(flagged) == 1
    assert flagged[0].text == coverage.INAUDIBLE
    assert 3.9 <= flagged[0].start <= 4.5 and 8.5 <= flagged[0].end <= 9.0
    assert out.warnings == [
        {
            "kind": "inaudible",
            "start": 4.0,
            "end": 9.0,
            "message": "speech at 4.0-9.0s could not be transcribed",
        }
    ]
    assert coverage.shifted_warning(out.warnings[0], 30.0)["message"] == (
        "speech at 34.0-39.0s could not be transcribed"
    )
    assert [s.text for s in out.segments] == ["hello", coverage.INAUDIBLE]


def test_words_over_silence_are_dropped() -> None:
    words = [seg((0.5, 1.0, "real")), seg((5.0, 5.5, "thank"), (5.6, 6.0, "you"))]
    out = coverage.check(silence(8), words, [vad.Span(0.4, 1.1)], lambda s: [])
    assert [s.text for s in out.segments] == ["real"]
    assert out.dropped_words == 2 and out.warnings == []


def test_a_stretched_word_does_not_cover_the_speech_it_spans() -> None:
    stretched = seg((0.0, 6.0, "so"), (6.1, 6.5, "then"))
    again = seg((0.3, 0.8, "early"), (1.5, 2.0, "on"), (2.6, 3.2, "we"), (3.6, 4.2, "said"))
    out = coverage.check(silence(7), [stretched], [vad.Span(0.2, 6.6)], lambda s: [again])
    assert out.retried == 1 and out.warnings == []
    assert " ".join(s.text for s in out.segments) == "early on we said then"


def test_uncovered_needs_a_long_enough_gap() -> None:
    words = [Word(start=0.5, end=1.0, text=" a"), Word(start=2.0, end=2.4, text=" b")]
    assert vad.uncovered([vad.Span(0.4, 2.5)], words) == []
    [gap] = vad.uncovered([vad.Span(0.4, 5.0)], words)
    assert gap.start == pytest.approx(2.8) and gap.end == 5.0

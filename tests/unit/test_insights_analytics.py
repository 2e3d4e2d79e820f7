"""Analytics on hand-made segments: every expected number is worked out in the comments."""

from __future__ import annotations

import pytest

from mina.insights.analytics import compute
from mina.insights.schemas import AnalyticsResult
from mina.transcript import Segment


def seg(start: float, end: float, text: str, speaker: str | None) -> Segment:
    return Segment(start=start, end=end, text=text, speaker=speaker)


# A: [0,10] + [19.9,25] + [40,50] = 25.1 s; B: [9,15] + [15,20] = 11 s (one turn [9,20]);
# Unknown: [30,32] = 2 s. Union of speech: [0,25] + [30,32] + [40,50] = 37 s of 60.
MEETING = [
    seg(0, 10, "Um, so we should start. What is the plan?", "A"),
    seg(9, 15, "I think we ship on Friday.", "B"),  # starts 1.0 s before A ends: interruption
    seg(15, 20, "You know, the tests pass.", "B"),  # same speaker: same turn
    seg(19.9, 25, "Okay.", "A"),  # overlaps B by 0.1 s only: within tolerance, no interruption
    seg(30, 32, "Hello?", None),
    seg(40, 50, "It is kind of late. Do you know the time", "A"),
]


@pytest.fixture(scope="module")
def result() -> AnalyticsResult:
    return compute(MEETING, duration=60, window_seconds=30)


def test_talk_time_share_and_order(result: AnalyticsResult) -> None:
    by = {s.speaker: s for s in result.speakers}
    assert [s.speaker for s in result.speakers] == ["A", "B", "Unknown"]
    assert by["A"].talk_seconds == pytest.approx(25.1)
    assert by["B"].talk_seconds == pytest.approx(11.0)
    assert by["Unknown"].talk_seconds == pytest.approx(2.0)
    assert by["A"].share == pytest.approx(25.1 / 38.1, abs=1e-4)
    assert by["B"].share == pytest.approx(11 / 38.1, abs=1e-4)
    assert sum(s.share for s in result.speakers) == pytest.approx(1.0, abs=1e-3)


def test_duration_and_silence(result: AnalyticsResult) -> None:
    assert result.duration == 60
    assert result.silence_seconds == pytest.approx(23.0)


def test_turns_monologues_and_interruptions(result: AnalyticsResult) -> None:
    by = {s.speaker: s for s in result.speakers}
    assert (by["A"].turns, by["B"].turns, by["Unknown"].turns) == (3, 1, 1)
    assert by["A"].longest_monologue_seconds == pytest.approx(10.0)
    assert by["B"].longest_monologue_seconds == pytest.approx(11.0)
    assert (by["A"].interruptions, by["B"].interruptions, by["Unknown"].interruptions) == (0, 1, 0)


def test_words_wpm_fillers_questions(result: AnalyticsResult) -> None:
    by = {s.speaker: s for s in result.speakers}
    # A: 9 + 1 + 10 words; B: 6 + 5; Unknown: 1.
    assert (by["A"].words, by["B"].words, by["Unknown"].words) == (20, 11, 1)
    assert by["A"].wpm == pytest.approx(47.8)  # 20 words in 25.1 s
    assert by["B"].wpm == pytest.approx(60.0)
    # A: "Um" and "kind of" (not after a determiner); B: a leading "You know,".
    assert (by["A"].fillers, by["B"].fillers, by["Unknown"].fillers) == (2, 1, 0)
    # A: "What is the plan?" and the unpunctuated "Do you know the time"; Unknown: "Hello?".
    assert (by["A"].questions, by["B"].questions, by["Unknown"].questions) == (2, 0, 1)


def test_timeline_windows(result: AnalyticsResult) -> None:
    first, second = result.timeline
    assert (first.start, first.end, second.start, second.end) == (0, 30, 30, 60)
    # [0,30]: A 10 + 5.1 = 15.1 s, B 11 s.
    assert first.shares["A"] == pytest.approx(15.1 / 26.1, abs=1e-4)
    assert first.shares["B"] == pytest.approx(11 / 26.1, abs=1e-4)
    assert first.shares["Unknown"] == 0
    # [30,60]: A 10 s, Unknown 2 s.
    assert second.shares["A"] == pytest.approx(10 / 12, abs=1e-4)
    assert second.shares["Unknown"] == pytest.approx(2 / 12, abs=1e-4)
    assert sum(second.shares.values()) == pytest.approx(1.0, abs=1e-3)


def test_overlapping_segments_of_one_speaker_are_not_counted_twice() -> None:
    result = compute([seg(0, 10, "one two", "A"), seg(5, 12, "three", "A")], duration=20)
    (a,) = result.speakers
    assert a.talk_seconds == pytest.approx(12.0)
    assert a.turns == 1
    assert result.silence_seconds == pytest.approx(8.0)


def test_last_window_is_shorter_and_silent_window_has_zero_shares() -> None:
    result = compute([seg(0, 5, "hello there", "A")], duration=70, window_seconds=30)
    assert [(p.start, p.end) for p in result.timeline] == [(0, 30), (30, 60), (60, 70)]
    assert result.timeline[0].shares == {"A": 1.0}
    assert result.timeline[2].shares == {"A": 0.0}


def test_empty_transcript_is_all_silence() -> None:
    result = compute([], duration=42.5)
    assert result.speakers == []
    assert result.silence_seconds == pytest.approx(42.5)
    assert len(result.timeline) == 1


def test_duration_grows_to_the_last_segment() -> None:
    result = compute([seg(0, 90, "long talk", "A")], duration=60)
    assert result.duration == 90
    assert result.silence_seconds == 0

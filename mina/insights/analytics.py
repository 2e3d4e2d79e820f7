"""Speaker analytics: deterministic arithmetic over a (diarized) transcript.

Rules, so that every number can be checked by hand:
- A segment without a speaker counts for "Unknown".
- talk_seconds: the union of a speaker's segment intervals (overlapping segments of the same
  speaker are not counted twice), clipped to [0, duration]. share = talk_seconds / the sum of
  all speakers' talk_seconds, so shares add up to 1 even when people talk over each other.
- words: tokens of letters/digits (apostrophes kept inside words). wpm = words per minute of
  the speaker's own talk time.
- A turn is a maximal run of consecutive segments (ordered by start) of one speaker; it lasts
  from its first start to its latest end. longest_monologue_seconds is a speaker's longest turn.
- Interruption: a turn that starts while the previous turn (another speaker's) is still going,
  by more than INTERRUPTION_TOLERANCE (0.2 s) — i.e. next.start < previous.end - 0.2. It counts
  for the speaker who starts talking. The tolerance absorbs timestamp jitter: ASR segment
  boundaries often touch or overlap by a few frames at an ordinary change of speaker.
- fillers and questions: the rules in `mina.insights.text`.
- silence_seconds = duration - the union of all speech intervals.
- timeline: consecutive windows of `window_seconds` (the last one may be shorter); shares are
  each speaker's talk seconds inside the window over all talk inside the window (all zero in a
  window without speech).
The duration is raised to the last segment's end when a transcript runs past it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from mina.insights import text as textrules
from mina.insights.schemas import AnalyticsResult, SpeakerStats, TimelinePoint
from mina.transcript import Segment

log = logging.getLogger(__name__)

UNKNOWN = "Unknown"
INTERRUPTION_TOLERANCE = 0.2

Interval = tuple[float, float]


@dataclass
class _Turn:
    speaker: str
    start: float
    end: float


def speaker_of(segment: Segment) -> str:
    name = (segment.speaker or "").strip()
    return name or UNKNOWN


def union(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of intervals (empty ones dropped)."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(intervals: Sequence[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def _overlap(intervals: Sequence[Interval], lo: float, hi: float) -> float:
    return sum(max(0.0, min(end, hi) - max(start, lo)) for start, end in intervals)


def turns_of(segments: Sequence[Segment]) -> list[_Turn]:
    turns: list[_Turn] = []
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        who = speaker_of(seg)
        if turns and turns[-1].speaker == who:
            turns[-1].end = max(turns[-1].end, seg.end)
        else:
            turns.append(_Turn(who, seg.start, seg.end))
    return turns


def _timeline(
    per_speaker: dict[str, list[Interval]], duration: float, window: float
) -> list[TimelinePoint]:
    points: list[TimelinePoint] = []
    if duration <= 0:
        return points
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + window, duration)
        talk = {who: _overlap(iv, start, end) for who, iv in per_speaker.items()}
        total = sum(talk.values())
        shares = {who: round(t / total, 4) if total > 0 else 0.0 for who, t in talk.items()}
        points.append(TimelinePoint(start=round(start, 3), end=round(end, 3), shares=shares))
        start = end
    return points


def compute(
    segments: Sequence[Segment], duration: float, window_seconds: float = 60
) -> AnalyticsResult:
    """Analytics of `segments` over a meeting of `duration` seconds."""
    if window_seconds <= 0:
        raise ValueError("window_seconds must be positive")
    last_end = max((s.end for s in segments), default=0.0)
    duration = max(float(duration), last_end, 0.0)

    raw: dict[str, list[Interval]] = defaultdict(list)
    words: dict[str, int] = defaultdict(int)
    fillers: dict[str, int] = defaultdict(int)
    questions: dict[str, int] = defaultdict(int)
    for seg in segments:
        who = speaker_of(seg)
        raw[who].append((max(0.0, seg.start), min(duration, seg.end)))
        words[who] += textrules.count_words(seg.text)
        fillers[who] += textrules.count_fillers(seg.text)
        questions[who] += textrules.count_questions(seg.text)
    per_speaker = {who: union(iv) for who, iv in raw.items()}
    talk = {who: _length(iv) for who, iv in per_speaker.items()}
    total_talk = sum(talk.values())

    turn_count: dict[str, int] = defaultdict(int)
    longest: dict[str, float] = defaultdict(float)
    interruptions: dict[str, int] = defaultdict(int)
    previous: _Turn | None = None
    for turn in turns_of(segments):
        turn_count[turn.speaker] += 1
        longest[turn.speaker] = max(longest[turn.speaker], turn.end - turn.start)
        if previous is not None and turn.start < previous.end - INTERRUPTION_TOLERANCE:
            interruptions[turn.speaker] += 1
        previous = turn

    stats = [
        SpeakerStats(
            speaker=who,
            talk_seconds=round(talk[who], 3),
            share=round(talk[who] / total_talk, 4) if total_talk > 0 else 0.0,
            words=words[who],
            wpm=round(words[who] / (talk[who] / 60.0), 1) if talk[who] > 0 else 0.0,
            turns=turn_count[who],
            longest_monologue_seconds=round(longest[who], 3),
            interruptions=interruptions[who],
            fillers=fillers[who],
            questions=questions[who],
        )
        for who in sorted(per_speaker, key=lambda w: (-talk[w], w))
    ]
    speech = _length(union([iv for ivs in per_speaker.values() for iv in ivs]))
    result = AnalyticsResult(
        duration=round(duration, 3),
        silence_seconds=round(max(0.0, duration - speech), 3),
        speakers=stats,
        timeline=_timeline(per_speaker, duration, float(window_seconds)),
    )
    log.debug("analytics over %d segments, %d speakers", len(segments), len(stats))
    return result

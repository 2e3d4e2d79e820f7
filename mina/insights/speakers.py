"""Aligning transcript segments to diarization turns.

A segment that already carries a speaker (a provider's diarization, e.g. AssemblyAI) keeps it:
provider labels win. Any other segment takes the speaker whose turns overlap it the longest;
a segment that overlaps no turn takes the nearest turn's speaker when that turn is within
NEAREST_SECONDS, else "Unknown".
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from mina.insights.schemas import SpeakerTurn
from mina.transcript import Segment

UNKNOWN = "Unknown"
NEAREST_SECONDS = 0.5


def _speaker_for(
    seg: Segment, turns: Sequence[SpeakerTurn], starts: list[float], ends_max: list[float]
) -> str:
    # Turns are sorted by start; ends_max[i] = max end of turns[:i+1], so every turn that can
    # overlap [seg.start, seg.end) lies in turns[lo:hi].
    lo = bisect.bisect_right(ends_max, seg.start)
    hi = bisect.bisect_left(starts, seg.end)
    overlap: dict[str, float] = defaultdict(float)
    for turn in turns[lo:hi]:
        shared = min(turn.end, seg.end) - max(turn.start, seg.start)
        if shared > 0:
            overlap[turn.speaker] += shared
    if overlap:
        return max(sorted(overlap.items()), key=lambda kv: kv[1])[0]
    nearest: tuple[float, str] | None = None
    for turn in turns[max(0, lo - 1) : hi + 1]:
        gap = max(turn.start - seg.end, seg.start - turn.end, 0.0)
        if nearest is None or gap < nearest[0]:
            nearest = (gap, turn.speaker)
    if nearest is not None and nearest[0] <= NEAREST_SECONDS:
        return nearest[1]
    return UNKNOWN


def assign_speakers(
    segments: Sequence[Segment], turns: Sequence[SpeakerTurn | Mapping[str, Any]]
) -> list[Segment]:
    """`segments` with speakers from `turns`, by maximal overlap; provider labels are kept.

    Turns may be `SpeakerTurn`s or their stored JSON form ({"start", "end", "speaker"}).
    """
    parsed = [t if isinstance(t, SpeakerTurn) else SpeakerTurn.model_validate(t) for t in turns]
    ordered = sorted(parsed, key=lambda t: (t.start, t.end))
    starts = [t.start for t in ordered]
    ends_max: list[float] = []
    for t in ordered:
        ends_max.append(max(t.end, ends_max[-1]) if ends_max else t.end)
    out: list[Segment] = []
    for seg in segments:
        if seg.speaker and seg.speaker.strip():
            out.append(seg)
            continue
        speaker = _speaker_for(seg, ordered, starts, ends_max) if ordered else UNKNOWN
        out.append(seg.model_copy(update={"speaker": speaker}))
    return out

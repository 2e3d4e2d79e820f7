"""Transcript words and segments to diarization turns.

A segment that already carries a speaker (a provider's diarization, e.g. AssemblyAI) keeps it:
provider labels win. Otherwise:

- with word timestamps (`Segment.words`), every word takes the speaker whose turns overlap it
  the longest, and a segment is split where the speaker changes between two words: each part
  keeps its words and the text they spell;
- without them (remote providers), the segment takes the speaker whose turns overlap it the
  longest.

Something that overlaps no turn takes the nearest turn's speaker when that turn is within
NEAREST_SECONDS; a word left over takes its segment's (or its neighbours') speaker, and a
segment left over is "Unknown".
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from mina.insights.schemas import SpeakerTurn
from mina.transcript import Segment, Word

UNKNOWN = "Unknown"
NEAREST_SECONDS = 0.5


class _Turns:
    """Turns sorted by start, with a running maximum of their ends for interval lookups."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self.turns = sorted(turns, key=lambda t: (t.start, t.end))
        self.starts = [t.start for t in self.turns]
        self.ends_max: list[float] = []
        for t in self.turns:
            self.ends_max.append(max(t.end, self.ends_max[-1]) if self.ends_max else t.end)

    def speaker(self, start: float, end: float) -> str | None:
        # every turn that can overlap [start, end) lies in turns[lo:hi]
        lo = bisect.bisect_right(self.ends_max, start)
        hi = bisect.bisect_left(self.starts, end)
        overlap: dict[str, float] = defaultdict(float)
        for turn in self.turns[lo:hi]:
            shared = min(turn.end, end) - max(turn.start, start)
            if shared > 0:
                overlap[turn.speaker] += shared
        if overlap:
            return max(sorted(overlap.items()), key=lambda kv: kv[1])[0]
        nearest: tuple[float, str] | None = None
        for turn in self.turns[max(0, lo - 1) : hi + 1]:
            gap = max(turn.start - end, start - turn.end, 0.0)
            if nearest is None or gap < nearest[0]:
                nearest = (gap, turn.speaker)
        if nearest is not None and nearest[0] <= NEAREST_SECONDS:
            return nearest[1]
        return None


def _text(words: Sequence[Word]) -> str:
    return "".join(w.text for w in words).strip()


def _by_words(seg: Segment, words: list[Word], turns: _Turns) -> list[Segment]:
    found = [turns.speaker(w.start, max(w.end, w.start + 0.01)) for w in words]
    fallback = turns.speaker(seg.start, seg.end)
    if fallback is None:
        known = Counter(s for s in found if s is not None)
        fallback = known.most_common(1)[0][0] if known else UNKNOWN
    labels = [s or fallback for s in found]
    labelled = [w.model_copy(update={"speaker": s}) for w, s in zip(words, labels, strict=True)]
    parts: list[list[Word]] = [[labelled[0]]]
    for word in labelled[1:]:
        if word.speaker == parts[-1][-1].speaker:
            parts[-1].append(word)
        else:
            parts.append([word])
    if len(parts) == 1:
        return [seg.model_copy(update={"speaker": labels[0], "words": labelled})]
    out = []
    for n, part in enumerate(parts):
        start = seg.start if n == 0 else part[0].start
        end = seg.end if n == len(parts) - 1 else part[-1].end
        out.append(
            seg.model_copy(
                update={
                    "start": start,
                    "end": max(end, start),
                    "text": _text(part),
                    "speaker": part[0].speaker,
                    "words": part,
                }
            )
        )
    return out


def assign_speakers(
    segments: Sequence[Segment], turns: Sequence[SpeakerTurn | Mapping[str, Any]]
) -> list[Segment]:
    """`segments` with speakers from `turns`, word by word where words are known (a segment
    spoken by two is split where the speaker changes); provider labels are kept.

    Turns may be `SpeakerTurn`s or their stored JSON form ({"start", "end", "speaker"}).
    """
    parsed = [t if isinstance(t, SpeakerTurn) else SpeakerTurn.model_validate(t) for t in turns]
    index = _Turns(parsed)
    out: list[Segment] = []
    for seg in segments:
        if seg.speaker and seg.speaker.strip():
            out.append(seg)
        elif not parsed:
            out.append(seg.model_copy(update={"speaker": UNKNOWN}))
        elif seg.words:
            out.extend(_by_words(seg, list(seg.words), index))
        else:
            speaker = index.speaker(seg.start, seg.end) or UNKNOWN
            out.append(seg.model_copy(update={"speaker": speaker}))
    return out

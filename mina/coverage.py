"""No silent loss: a transcript's words checked against the speech the VAD found.

1. Words over silence (no speech under them) are dropped: Whisper made them up.
2. Speech no word covers (Whisper jumped ahead, or one segment claims a long stretch with a few
   words) is transcribed again on its own, and its words put in.
3. What is still uncovered becomes an `[inaudible]` segment (flag `inaudible`) and a warning
   the chunk keeps, so a reader and an operator see where speech was not transcribed.

Only for transcribers that give word times (the local one); see docs/transcription.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mina import vad
from mina.transcript import Segment, Word

log = logging.getLogger(__name__)

INAUDIBLE = "[inaudible]"
#: The flag of a marker segment (no words, no text) from where a chunk's transcription stopped
#: to its end: the tail left open for the seam (mina.providers.whisper, mina.pipeline.seams).
OPEN = "open"
#: Audio taken on each side of an uncovered stretch when it is transcribed again.
MARGIN = 0.3

#: Transcribes 16 kHz samples into segments with words, on the samples' own timeline.
Decode = Callable[[np.ndarray], list[Segment]]


@dataclass
class Checked:
    segments: list[Segment]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    retried: int = 0
    dropped_words: int = 0


def check(
    samples: np.ndarray, segments: list[Segment], speech: Sequence[vad.Span], decode: Decode
) -> Checked:
    """`segments` (with words, times on the samples' timeline) made to cover `speech`."""
    out = Checked(_without_silence(segments, speech))
    out.dropped_words = _count(segments) - _count(out.segments)
    words = [w for s in out.segments for w in s.words or []]
    duration = samples.size / vad.RATE
    for gap in vad.uncovered(speech, words):
        a, b = max(0.0, gap.start - MARGIN), min(duration, gap.end + MARGIN)
        out.retried += 1
        found = decode(samples[int(a * vad.RATE) : int(b * vad.RATE)])
        found = [s.shifted(a) for s in found]
        found = _without_silence(found, [vad.Span(gap.start, gap.end)])
        out.segments = _put_in(out.segments, found, a, b)
        words = [w for s in found for w in s.words or []]
        for left in vad.uncovered([gap], words):
            out.segments = _put_in(out.segments, [_inaudible(left)], left.start, left.start)
            out.warnings.append(inaudible_warning(left.start, left.end))
    return out


def inaudible_warning(start: float, end: float) -> dict[str, Any]:
    """A chunk warning: times on the chunk's timeline (`shifted_warning` moves them)."""
    return {
        "kind": "inaudible",
        "start": round(start, 2),
        "end": round(end, 2),
        "message": f"speech at {start:.1f}-{end:.1f}s could not be transcribed",
    }


def shifted_warning(warning: dict[str, Any], offset: float) -> dict[str, Any]:
    if warning.get("kind") != "inaudible":
        return warning
    return inaudible_warning(warning["start"] + offset, warning["end"] + offset)


def _count(segments: Sequence[Segment]) -> int:
    return sum(len(s.words or []) for s in segments)


def _inaudible(span: vad.Span) -> Segment:
    return Segment(
        start=round(span.start, 3), end=round(span.end, 3), text=INAUDIBLE, flag="inaudible"
    )


def _without_silence(segments: Sequence[Segment], speech: Sequence[vad.Span]) -> list[Segment]:
    out = []
    for seg in segments:
        if seg.words is None:
            out.append(seg)
            continue
        kept = [w for w in seg.words if not vad.over_silence(w, speech)]
        if kept:  # times from the words: a segment may claim far more than they fill
            out.append(with_words(seg, kept))
    return out


def with_words(seg: Segment, words: list[Word]) -> Segment:
    """`seg` holding only `words`: its text and times follow them."""
    return seg.model_copy(
        update={
            "words": words,
            "text": "".join(w.text for w in words).strip(),
            "start": words[0].start,
            "end": words[-1].end,
        }
    )


def _put_in(segments: list[Segment], new: list[Segment], a: float, b: float) -> list[Segment]:
    """`new` replaces the words whose middle lies in [a, b); the order is by time."""
    kept: list[Segment] = []
    for seg in segments:
        if seg.words is None or seg.flag:
            kept.append(seg)
            continue
        words = [w for w in seg.words if not a <= (w.start + w.end) / 2 < b]
        if words:
            kept.append(with_words(seg, words))
    return sorted(kept + new, key=lambda s: s.start)

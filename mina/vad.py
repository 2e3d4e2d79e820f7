"""Where the speech is: faster-whisper's bundled Silero VAD, and what transcript words cover.

The local transcriber checks its words against the speech found here (docs/transcription.md):
speech no word covers is transcribed again, words where there is no speech are dropped.
Times are seconds on the audio's own timeline (16 kHz samples).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mina.transcript import Word

RATE = 16_000
#: A word's time is Whisper's estimate (cross-attention alignment): it counts as covering
#: speech this far around it.
WORD_REACH = 0.4
#: A word longer than this was stretched over a gap by the alignment (Whisper jumped ahead):
#: only its last `STRETCHED` seconds count as covered.
STRETCHED = 1.5
#: Speech left uncovered for at least this long is transcribed again.
MIN_GAP = 0.8
#: A word with no speech within this distance was made up over silence.
SILENCE_REACH = 0.25
#: Silero's frame: 512 samples (32 ms) per speech probability.
FRAME = 512
#: Below this probability a frame is silence (faster-whisper's `neg_threshold` for 0.5).
QUIET_PROBABILITY = 0.35


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def speech(samples: np.ndarray) -> list[Span]:
    """Stretches of speech in 16 kHz mono float32 samples (Silero VAD, bundled, offline)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if samples.size < RATE // 10:
        return []
    options = VadOptions(
        threshold=0.5, min_speech_duration_ms=200, min_silence_duration_ms=500, speech_pad_ms=150
    )
    found = get_speech_timestamps(samples.astype(np.float32, copy=False), options)
    return [Span(s["start"] / RATE, s["end"] / RATE) for s in found]


def quiet(samples: np.ndarray, at: float, reach: float) -> bool:
    """True when every Silero frame within `reach` seconds of `at` is silence: a pause between
    words lies there (a cut there splits no word). Frame by frame, unlike `speech`, whose
    stretches bridge pauses shorter than 0.5 s."""
    from faster_whisper.vad import get_vad_model

    if samples.size < FRAME:
        return True
    padded = np.pad(samples.astype(np.float32, copy=False), (0, -samples.size % FRAME))
    probabilities = np.asarray(get_vad_model()(padded)).reshape(-1)
    first = max(0, int((at - reach) * RATE) // FRAME)
    last = min(probabilities.size, int((at + reach) * RATE) // FRAME + 1)
    return first >= last or bool(np.all(probabilities[first:last] < QUIET_PROBABILITY))


def covered(words: Iterable[Word]) -> list[Span]:
    """The time the words account for, merged, each word widened by `WORD_REACH`."""
    spans = []
    for w in words:
        start = max(w.start, w.end - STRETCHED)
        spans.append(Span(start - WORD_REACH, w.end + WORD_REACH))
    return merge(spans, gap=0.0)


def uncovered(
    speech_spans: Sequence[Span], words: Iterable[Word], min_gap: float = MIN_GAP
) -> list[Span]:
    """Speech that no word covers, in stretches of at least `min_gap` seconds."""
    cover = covered(words)
    out: list[Span] = []
    for s in speech_spans:
        out += [g for g in subtract(s, cover) if g.length >= min_gap]
    return merge(out, gap=1.0)


def over_silence(word: Word, speech_spans: Sequence[Span], reach: float = SILENCE_REACH) -> bool:
    """True when no speech lies within `reach` of the word: Whisper made it up."""
    return not any(s.start - reach < word.end and word.start < s.end + reach for s in speech_spans)


def subtract(span: Span, cuts: Sequence[Span]) -> list[Span]:
    """`span` minus the (sorted, merged) `cuts`."""
    out: list[Span] = []
    at = span.start
    for c in cuts:
        if c.end <= at or c.start >= span.end:
            continue
        if c.start > at:
            out.append(Span(at, c.start))
        at = max(at, c.end)
    if at < span.end:
        out.append(Span(at, span.end))
    return out


def merge(spans: Iterable[Span], gap: float) -> list[Span]:
    """Sorted spans, those closer than `gap` joined."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: s.start):
        if out and s.start <= out[-1].end + gap:
            out[-1] = Span(out[-1].start, max(out[-1].end, s.end))
        else:
            out.append(s)
    return out

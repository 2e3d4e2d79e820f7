"""Where the speech is: faster-whisper's bundled Silero VAD, and what transcript words cover.

The local transcriber checks its words against the speech found here (docs/transcription.md):
speech no word covers is transcribed again, words where there is no speech are dropped.
Times are seconds on the audio's own timeline (16 kHz samples).

Silero runs once per signal: `probabilities` keeps the last few signals' frame probabilities
(by the padded signal's digest), and the stretches are cut from them here (`stretches`, the
loop of faster-whisper's `get_speech_timestamps`) with each caller's options. A chunk's speech
for the coverage check (`speech`), its pause test (`quiet`) and its diarization features
(`mina.insights.features.speech_of`) are three readings of one run of the model (~60 ms of
CPU per 30 s) where there were three runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
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


@dataclass(frozen=True)
class Options:
    """faster-whisper's `VadOptions` that Mina sets (no maximum length of a stretch)."""

    threshold: float = 0.5
    min_speech_ms: int = 0
    min_silence_ms: int = 2000
    pad_ms: int = 400


#: The coverage check's stretches: pauses of 0.5 s split them, 150 ms of padding.
COVERAGE = Options(threshold=0.5, min_speech_ms=200, min_silence_ms=500, pad_ms=150)

_KEPT = 16  # signals whose probabilities are kept (a chunk's are read 2-3 times in a row)
_kept: OrderedDict[tuple[int, bytes], np.ndarray] = OrderedDict()
_kept_lock = threading.Lock()
_runs = 0


def model_runs() -> int:
    """How many times this process ran Silero (benches and tests count them)."""
    return _runs


def warm_up() -> None:
    """Load Silero now (~0.15 s), not when the first chunk needs it."""
    from faster_whisper.vad import get_vad_model

    get_vad_model()


def probabilities(padded: np.ndarray) -> np.ndarray:
    """Silero's speech probability of each `FRAME` of `padded` (float32, a whole number of
    frames), one float32 each. Computed once per signal: the same samples asked for again (the
    transcriber's, then the features') are answered from the last `_KEPT` signals."""
    global _runs
    from faster_whisper.vad import get_vad_model

    signal = np.ascontiguousarray(padded, dtype=np.float32)
    key = (signal.size, hashlib.blake2b(signal.tobytes(), digest_size=16).digest())
    with _kept_lock:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
            return found
    found = np.asarray(get_vad_model()(signal), dtype=np.float32).reshape(-1)
    found.setflags(write=False)
    with _kept_lock:
        _runs += 1
        _kept[key] = found
        while len(_kept) > _KEPT:
            _kept.popitem(last=False)
    return found


def _frames(x: np.ndarray) -> np.ndarray:
    """The frame probabilities of float32 samples `x`, padded as faster-whisper pads them (to
    the next whole frame, a whole frame more when it already is one): one padding for every
    reader, so a chunk's readers share one run of the model."""
    return probabilities(np.pad(x, (0, FRAME - x.size % FRAME)))


def stretches(samples: np.ndarray, options: Options, rate: int = RATE) -> list[tuple[int, int]]:
    """(start, end) sample indices of the speech in `samples`: faster-whisper's
    `get_speech_timestamps` (1.2.1) on probabilities from `probabilities`, with the same
    padding of the signal, the same float32 comparisons and the same integer arithmetic, so
    the answer is the same (tests/unit/test_vad.py compares them)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    probs = _frames(x)
    threshold = options.threshold
    negative = max(threshold - 0.15, 0.01)
    min_speech = rate * options.min_speech_ms / 1000
    min_silence = rate * options.min_silence_ms / 1000
    pad = rate * options.pad_ms / 1000
    found: list[list[int]] = []
    start: int | None = None
    silent_from = 0
    for i, p in enumerate(probs):  # np.float32 against Python floats: float32 comparisons
        if p >= threshold and silent_from:
            silent_from = 0
        if p >= threshold and start is None:
            start = FRAME * i
            continue
        if p < negative and start is not None:
            if not silent_from:
                silent_from = FRAME * i
            if FRAME * i - silent_from < min_silence:
                continue
            if silent_from - start > min_speech:
                found.append([start, silent_from])
            start, silent_from = None, 0
    if start is not None and x.size - start > min_speech:
        found.append([start, x.size])
    for i, span in enumerate(found):
        if i == 0:
            span[0] = int(max(0, span[0] - pad))
        if i != len(found) - 1:
            gap = found[i + 1][0] - span[1]
            if gap < 2 * pad:
                span[1] += int(gap // 2)
                found[i + 1][0] = int(max(0, found[i + 1][0] - gap // 2))
            else:
                span[1] = int(min(x.size, span[1] + pad))
                found[i + 1][0] = int(max(0, found[i + 1][0] - pad))
        else:
            span[1] = int(min(x.size, span[1] + pad))
    return [(a, b) for a, b in found]


def speech(samples: np.ndarray) -> list[Span]:
    """Stretches of speech in 16 kHz mono float32 samples (Silero VAD, bundled, offline)."""
    if samples.size < RATE // 10:
        return []
    return [Span(a / RATE, b / RATE) for a, b in stretches(samples, COVERAGE)]


def quiet(samples: np.ndarray, at: float, reach: float) -> bool:
    """True when every Silero frame within `reach` seconds of `at` is silence: a pause between
    words lies there (a cut there splits no word). Frame by frame, unlike `speech`, whose
    stretches bridge pauses shorter than 0.5 s."""
    if samples.size < FRAME:
        return True
    frames = _frames(np.asarray(samples, dtype=np.float32).reshape(-1))
    first = max(0, int((at - reach) * RATE) // FRAME)
    last = min(frames.size, int((at + reach) * RATE) // FRAME + 1)
    return first >= last or bool(np.all(frames[first:last] < QUIET_PROBABILITY))


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

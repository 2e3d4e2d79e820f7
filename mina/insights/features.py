"""What diarization keeps of a chunk: its speech and the speaker embeddings of its windows.

Computed by transcription, chunk by chunk (in parallel), so diarization after the barrier only
clusters. For a 16 kHz mono signal:

1. speech: Silero VAD (the model faster-whisper ships, on onnxruntime; `mina.vad`, which runs
   it once per chunk for every reader), pauses of 0.25 s and more split it, 50 ms of padding
   each side;
2. windows: inside each stretch of speech, WINDOW seconds every HOP seconds (the last one
   ends with the stretch); a stretch shorter than WINDOW gets one window centred on it;
3. embeddings: CAM++ (`mina.insights.embeddings`) of each window's filter banks, computed once
   for the whole chunk and sliced per window (~40 ms per window on onnxruntime, one thread).

A chunk's features are ~1 KB per window (40 windows per 30 s of speech), kept as an .npz.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mina import vad
from mina.insights import embeddings as emb
from mina.insights import npz

SR = emb.SR
WINDOW = 1.5  # seconds of audio per embedding
HOP = 0.75  # seconds between windows inside a stretch of speech
MIN_SPEECH = 0.2  # stretches shorter than this are left out
VAD_THRESHOLD = 0.5
VAD_MIN_SILENCE_MS = 250
VAD_PAD_MS = 50
SPEECH = vad.Options(threshold=VAD_THRESHOLD, min_silence_ms=VAD_MIN_SILENCE_MS, pad_ms=VAD_PAD_MS)

FloatArray = npt.NDArray[np.float64]


@dataclass
class Features:
    """Times in seconds from the start of the signal (or of the meeting, once assembled)."""

    speech: FloatArray  # (s, 2) start, end
    windows: FloatArray  # (n, 2) start, end
    embeddings: npt.NDArray[np.float32]  # (n, 192) unit length
    seconds: float

    def __len__(self) -> int:
        return int(self.windows.shape[0])


def empty(seconds: float = 0.0) -> Features:
    return Features(
        np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, emb.DIM), dtype=np.float32), seconds
    )


def speech_of(samples: npt.NDArray[np.float32]) -> FloatArray:
    """(s, 2) stretches of speech in seconds, by Silero VAD: the same run of the model as the
    local transcriber's coverage check on the same chunk (`mina.vad.probabilities`)."""
    if samples.size < SR // 10:
        return np.zeros((0, 2))
    found = vad.stretches(samples, SPEECH, rate=SR)
    spans = [(a / SR, b / SR) for a, b in found]
    spans = [(a, b) for a, b in spans if b - a >= MIN_SPEECH]
    return np.asarray(spans, dtype=np.float64).reshape(-1, 2)


def windows_of(speech: FloatArray, seconds: float) -> FloatArray:
    """(n, 2) embedding windows over the stretches of speech (see the module's docstring)."""
    out: list[tuple[float, float]] = []
    for a, b in speech:
        if b - a <= WINDOW:
            mid = (a + b) / 2
            start = min(max(0.0, mid - WINDOW / 2), max(0.0, seconds - WINDOW))
            out.append((start, min(seconds, start + WINDOW)))
            continue
        starts = list(np.arange(a, b - WINDOW + 1e-9, HOP))
        if starts[-1] + WINDOW < b - 0.05:
            starts.append(b - WINDOW)
        out.extend((float(s), float(s) + WINDOW) for s in starts)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def of_samples(samples: npt.ArrayLike, model: emb.Embedder) -> Features:
    """Speech, windows and embeddings of one 16 kHz mono float signal (a chunk)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    seconds = x.size / SR
    speech = speech_of(x)
    windows = windows_of(speech, seconds)
    if windows.shape[0] == 0:
        return replace(empty(seconds), speech=speech)
    bank = emb.fbank(x)
    width = emb.frame_count(round(WINDOW * SR))
    cuts = []
    for a, _b in windows:
        first = min(round(a * SR / emb.HOP), max(0, bank.shape[0] - width))
        cuts.append(bank[first : first + width])
    if any(c.shape[0] != cuts[0].shape[0] for c in cuts):  # a chunk shorter than a window
        vectors = np.concatenate([model.embed([c]) for c in cuts])
    else:
        vectors = model.embed(cuts)
    return Features(speech, windows, vectors, seconds)


def save(f: Features, path: str | Path) -> None:
    """Write a chunk's features (an uncompressed .npz)."""
    with open(path, "wb") as fh:
        np.savez(
            fh,
            speech=f.speech,
            windows=f.windows,
            embeddings=f.embeddings,
            seconds=np.float64(f.seconds),
        )


def load(path: str | Path) -> Features:
    """What `save` wrote; ValueError if it is not that."""
    try:
        # One file at a time per process (mina.insights.npz); the fetch itself stays parallel.
        with npz.opened(path) as data:
            f = Features(
                data["speech"].astype(np.float64).reshape(-1, 2),
                data["windows"].astype(np.float64).reshape(-1, 2),
                data["embeddings"].astype(np.float32),
                float(data["seconds"]),
            )
    except (KeyError, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a features file: {exc}") from exc
    if f.embeddings.shape != (len(f), emb.DIM):
        raise ValueError("features file with inconsistent shapes")
    return f


def assemble(parts: Sequence[Features]) -> Features:
    """Per-chunk features (each computed on its chunk alone) on the timeline of the chunks
    joined end to end, as merge joins them."""
    if not parts:
        return empty()
    offsets = np.cumsum([0.0] + [p.seconds for p in parts[:-1]])
    return Features(
        np.concatenate([p.speech + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.windows + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.embeddings for p in parts]),
        float(offsets[-1] + parts[-1].seconds),
    )

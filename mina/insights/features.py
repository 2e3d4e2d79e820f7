"""Short-time features for diarization, computed block by block with numpy/scipy.

Frames of 32 ms every 10 ms at 16 kHz. Per frame: log energy (dB), 20 MFCCs (40 mel bands,
pre-emphasis, Hamming window) and a pitch estimate from the normalized cross-correlation
(NCCF) peak between 60 and 400 Hz. `FeatureStream` takes audio in blocks of any size and keeps
the frame grid continuous across blocks, so an hour of audio never needs to be in memory at once:
only the per-frame features are kept (~90 bytes per 10 ms, ~33 MB per hour).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft

SR = 16000
HOP = 160
FRAME = 512
N_FFT = 512
N_MELS = 40
N_MFCC = 20
F0_MIN = 60.0
F0_MAX = 400.0
VOICING_MIN = 0.6
BLOCK_FRAMES = 3000  # frames per batch of FFTs (~30 s of audio)

Float32Array = npt.NDArray[np.float32]


@dataclass
class Features:
    energy_db: Float32Array  # (n,)
    mfcc: Float32Array  # (n, N_MFCC)
    f0: Float32Array  # (n,) Hz, 0 where unvoiced
    voicing: Float32Array  # (n,) NCCF peak 0..1

    def __len__(self) -> int:
        return int(self.energy_db.shape[0])


def _mel_filterbank(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> Float32Array:
    def hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = mel_to_hz(
        np.linspace(hz_to_mel(np.array(20.0)), hz_to_mel(np.array(7600.0)), n_mels + 2)
    )
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    bank = np.zeros((n_mels, bins.size), dtype=np.float32)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        bank[m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


_MEL = _mel_filterbank()
_WINDOW = np.hamming(FRAME).astype(np.float32)
# Pitch runs at 8 kHz (pairs of samples averaged) on every other frame: a quarter of the work.
_PSR = SR // 2
_PFRAME = FRAME // 2
_LAG_MIN = int(_PSR / F0_MAX)
_LAG_MAX = int(_PSR / F0_MIN)


def _frames(samples: Float32Array, count: int) -> Float32Array:
    view = np.lib.stride_tricks.sliding_window_view(samples[: (count - 1) * HOP + FRAME], FRAME)
    return view[::HOP]


def _pitch(frames: Float32Array) -> tuple[Float32Array, Float32Array]:
    """F0 (Hz, 0 = unvoiced) and NCCF peak per frame, estimated on every other frame."""
    half = frames[::2]
    x = 0.5 * (half[:, 0::2] + half[:, 1::2])
    x = x - x.mean(axis=1, keepdims=True)
    spec = sfft.rfft(x, n=2 * _PFRAME, axis=1, workers=-1)
    corr = sfft.irfft(spec.real**2 + spec.imag**2, axis=1, workers=-1)[:, : _LAG_MAX + 1]
    cum = np.cumsum(x.astype(np.float64) ** 2, axis=1)
    lags = np.arange(_LAG_MIN, _LAG_MAX + 1)
    e0 = cum[:, _PFRAME - 1 - lags]
    e1 = cum[:, _PFRAME - 1 : _PFRAME] - cum[:, lags - 1]
    nccf = corr[:, lags] / np.sqrt(e0 * e1 + 1e-12)
    peak = nccf.max(axis=1)
    local_max = np.zeros_like(nccf, dtype=bool)
    local_max[:, 1:-1] = (nccf[:, 1:-1] >= nccf[:, :-2]) & (nccf[:, 1:-1] >= nccf[:, 2:])
    candidates = local_max & (nccf >= 0.9 * peak[:, None])
    first = np.argmax(candidates, axis=1)
    has = candidates.any(axis=1)
    lag = np.where(has, lags[first], lags[np.argmax(nccf, axis=1)])
    f0 = np.where(peak >= VOICING_MIN, _PSR / lag, 0.0)
    n = frames.shape[0]
    f0_all = np.repeat(f0, 2)[:n].astype(np.float32)
    voicing = np.repeat(np.clip(peak, 0.0, 1.0), 2)[:n].astype(np.float32)
    return f0_all, voicing


def _block_features(frames: Float32Array) -> Features:
    emphasized = np.concatenate([frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    spec = sfft.rfft(emphasized * _WINDOW, n=N_FFT, axis=1, workers=-1)
    logmel = np.log((spec.real**2 + spec.imag**2) @ _MEL.T + 1e-10)
    mfcc = sfft.dct(logmel, type=2, axis=1, norm="ortho")[:, :N_MFCC]
    energy = 10.0 * np.log10(np.einsum("ij,ij->i", frames, frames) / FRAME + 1e-10)
    f0, voicing = _pitch(frames)
    return Features(energy.astype(np.float32), mfcc.astype(np.float32), f0, voicing)


def _concat(parts: list[Features]) -> Features:
    if not parts:
        empty = np.zeros(0, dtype=np.float32)
        return Features(empty, np.zeros((0, N_MFCC), dtype=np.float32), empty, empty)
    return Features(
        np.concatenate([p.energy_db for p in parts]),
        np.concatenate([p.mfcc for p in parts]),
        np.concatenate([p.f0 for p in parts]),
        np.concatenate([p.voicing for p in parts]),
    )


class FeatureStream:
    """Push 16 kHz mono float32 blocks in; `finish()` returns the features of every frame."""

    def __init__(self) -> None:
        self._pending: Float32Array = np.zeros(0, dtype=np.float32)
        self._parts: list[Features] = []
        self.samples = 0

    def push(self, block: npt.ArrayLike) -> None:
        data = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples += data.size
        self._pending = np.concatenate([self._pending, data])
        self._drain(final=False)

    def _drain(self, final: bool) -> None:
        while True:
            size = self._pending.size
            available = (size - FRAME) // HOP + 1 if size >= FRAME else 0
            if available <= 0 or (available < BLOCK_FRAMES and not final):
                return
            count = min(available, BLOCK_FRAMES)
            self._parts.append(_block_features(_frames(self._pending, count)))
            self._pending = self._pending[count * HOP :]

    def finish(self) -> Features:
        pad = FRAME - HOP if self._pending.size else 0
        self._pending = np.concatenate([self._pending, np.zeros(pad, dtype=np.float32)])
        self._drain(final=True)
        self._pending = np.zeros(0, dtype=np.float32)
        return _concat(self._parts)


def features_of(blocks: Iterable[npt.ArrayLike]) -> tuple[Features, int]:
    """Features of a stream of 16 kHz blocks and the number of samples seen."""
    stream = FeatureStream()
    for block in blocks:
        stream.push(block)
    return stream.finish(), stream.samples


def of_samples(samples: npt.ArrayLike) -> Features:
    """Features of one whole 16 kHz mono signal (a chunk)."""
    stream = FeatureStream()
    stream.push(samples)
    return stream.finish()


def save(f: Features, samples: int, path: str | Path) -> None:
    """Write a chunk's features and its length in samples (an uncompressed .npz)."""
    with open(path, "wb") as fh:
        np.savez(
            fh,
            energy_db=f.energy_db,
            mfcc=f.mfcc,
            f0=f.f0,
            voicing=f.voicing,
            samples=np.int64(samples),
        )


def load(path: str | Path) -> tuple[Features, int]:
    """What `save` wrote; ValueError if it is not that."""
    try:
        with np.load(path, allow_pickle=False) as data:
            f = Features(
                data["energy_db"].astype(np.float32),
                data["mfcc"].astype(np.float32),
                data["f0"].astype(np.float32),
                data["voicing"].astype(np.float32),
            )
            samples = int(data["samples"])
    except (KeyError, OSError, EOFError) as exc:
        raise ValueError(f"not a features file: {exc}") from exc
    if f.mfcc.shape != (len(f), N_MFCC) or not len(f) == f.f0.size == f.voicing.size:
        raise ValueError("features file with inconsistent shapes")
    return f, samples


def _fit(f: Features, frames: int) -> Features:
    """`f` cut or stretched to `frames` frames (the last frame repeated; silence if empty)."""
    have = len(f)
    if have >= frames:
        return Features(f.energy_db[:frames], f.mfcc[:frames], f.f0[:frames], f.voicing[:frames])
    if have == 0:
        f = Features(
            np.full(1, -100.0, dtype=np.float32),
            np.zeros((1, N_MFCC), dtype=np.float32),
            np.zeros(1, dtype=np.float32),
            np.zeros(1, dtype=np.float32),
        )
    extra = frames - have
    return Features(
        np.concatenate([f.energy_db[:have], np.repeat(f.energy_db[-1:], extra)]),
        np.concatenate([f.mfcc[:have], np.repeat(f.mfcc[-1:], extra, axis=0)]),
        np.concatenate([f.f0[:have], np.repeat(f.f0[-1:], extra)]),
        np.concatenate([f.voicing[:have], np.repeat(f.voicing[-1:], extra)]),
    )


def assemble(parts: Sequence[tuple[Features, int]]) -> Features:
    """Per-chunk features (each computed on its chunk alone, with its length in samples) on the
    frame grid of the chunks joined end to end, as merge joins them.

    Chunk k starts at frame round(S_k / HOP), S_k its first sample in the joined audio, so the
    grid never drifts however many chunks there are; where two chunks meet, the earlier one is
    cut or its last frame repeated (at most a frame or two: the frames that straddle the
    boundary, which a chunk alone cannot see)."""
    starts: list[int] = []
    sample = 0
    for _f, samples in parts:
        starts.append(round(sample / HOP))
        sample += samples
    fitted = []
    for k, (f, _samples) in enumerate(parts):
        end = starts[k + 1] if k + 1 < len(parts) else starts[k] + len(f)
        fitted.append(_fit(f, end - starts[k]))
    return _concat(fitted)

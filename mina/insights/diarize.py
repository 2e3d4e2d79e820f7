"""Offline speaker diarization (no model) and alignment of transcript segments to speakers.

1. Features per 10 ms frame (`mina.insights.features`): log energy, MFCCs, pitch.
2. Voice activity: energy above a threshold between the noise floor (10th percentile) and the
   loud speech level (95th percentile); gaps < 0.3 s are bridged, blips < 0.2 s dropped. Audio
   whose loud and quiet frames differ by less than 6 dB (steady noise, hum) has no speech.
3. Inside each speech region, windows of 1.5 s every 0.5 s; a window's vector is the mean and
   standard deviation of its MFCCs 1-19 and its median log pitch (weighted x3: voices differ
   most in pitch), standardized.
4. Ward clustering over-clusters the windows (about one cluster per 8 windows, at most 16);
   clusters are then merged by BIC on their frames' MFCCs (`mina.insights.clustering`) until no
   merge pays, or down to `num_speakers` when it is given; never more than `max_speakers`.
5. Resegmentation: one full-covariance Gaussian per speaker; every speech frame takes the
   speaker whose Gaussian best explains the second of audio around it (two rounds).
6. Label runs shorter than 0.5 s join their longer neighbour; turns of one speaker separated
   by less than 0.5 s are joined; speakers are named S1, S2, ... in order of first appearance.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from scipy.ndimage import binary_closing, binary_opening

from mina.errors import PermanentError
from mina.insights import clustering
from mina.insights import features as feat
from mina.insights.schemas import DiarizationResult, SpeakerTurn
from mina.insights.speakers import assign_speakers

log = logging.getLogger(__name__)

FRAME_SECONDS = feat.HOP / feat.SR
WINDOW = 150  # frames per embedding window (1.5 s)
STEP = 50  # frames between windows (0.5 s)
MIN_WINDOW_SPEECH = 30  # speech frames a window needs
BRIDGE = 30  # speech gaps shorter than this (frames) are bridged
MIN_SPEECH = 20  # speech runs shorter than this (frames) are dropped
MIN_TURN = 50  # label runs shorter than this (frames) join a neighbour
PITCH_WEIGHT = 3.0
WINDOWS_PER_CLUSTER = 8
MAX_FINE_CLUSTERS = 16
BIC_COEFFS = slice(1, 20)  # MFCCs 1-19 model a speaker in the BIC and resegmentation
BLOCK_SECONDS = 30
JOIN_GAP_SECONDS = 0.5  # pauses shorter than this inside one speaker's turn
SILENCE_DB = -70.0  # frames quieter than this are never speech
MIN_DYNAMIC_RANGE_DB = 6.0  # speech varies more than this between loud and quiet frames

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def voice_activity(energy_db: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    if energy_db.size == 0:
        return np.zeros(0, dtype=bool)
    floor, loud = np.percentile(energy_db, [10, 95])
    if loud - floor < MIN_DYNAMIC_RANGE_DB or loud < SILENCE_DB:
        return np.zeros(energy_db.size, dtype=bool)  # steady noise or silence, no speech
    threshold = max(floor + 0.3 * (loud - floor), loud - 40.0, SILENCE_DB)
    speech = energy_db > threshold
    speech = binary_closing(speech, structure=np.ones(BRIDGE, dtype=bool))
    speech = binary_opening(speech, structure=np.ones(MIN_SPEECH, dtype=bool))
    return np.asarray(speech, dtype=bool)


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _windows(speech: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in _runs(speech):
        if b - a < MIN_WINDOW_SPEECH:
            continue
        if b - a <= WINDOW + STEP:
            out.append((a, b))
            continue
        starts = list(range(a, b - WINDOW + 1, STEP))
        if starts[-1] + WINDOW < b:
            starts.append(b - WINDOW)
        out.extend((s, s + WINDOW) for s in starts)
    return out


def _embeddings(f: feat.Features, windows: list[tuple[int, int]]) -> FloatArray:
    voiced_f0 = f.f0[f.f0 > 0]
    default_pitch = float(np.median(np.log(voiced_f0))) if voiced_f0.size else np.log(150.0)
    rows = []
    for a, b in windows:
        mfcc = f.mfcc[a:b, BIC_COEFFS]
        f0 = f.f0[a:b]
        f0 = f0[f0 > 0]
        pitch = float(np.median(np.log(f0))) if f0.size >= 5 else default_pitch
        rows.append(np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0), [pitch]]))
    x = np.asarray(rows, dtype=np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    x[:, -1] *= PITCH_WEIGHT
    return x


def _speaker_frames(
    f: feat.Features,
    speech: npt.NDArray[np.bool_],
    windows: list[tuple[int, int]],
    num_speakers: int | None,
    max_speakers: int,
) -> IntArray:
    """Per-frame speaker index (-1 outside speech)."""
    x = _embeddings(f, windows)
    fine_k = min(MAX_FINE_CLUSTERS, max(1, len(windows) // WINDOWS_PER_CLUSTER))
    fine_k = max(fine_k, min(num_speakers or 1, len(windows)))
    fine = _frame_labels(len(f), windows, clustering.over_cluster(x, fine_k), fine_k)
    fine[~speech] = -1
    frames = f.mfcc[:, BIC_COEFFS]
    groups = clustering.bic_merge(frames, fine, num_speakers, max(1, max_speakers))
    if len(groups) <= 1 or num_speakers == 1:
        return np.where(speech, 0, -1).astype(np.int64)
    mapping = np.full(fine_k, -1, dtype=np.int64)
    for speaker, group in enumerate(groups):
        mapping[group] = speaker
    labels = np.where(fine >= 0, mapping[np.maximum(fine, 0)], -1)
    return clustering.resegment(frames, speech, labels, len(groups))


def _frame_labels(
    n_frames: int, windows: list[tuple[int, int]], labels: IntArray, k: int
) -> IntArray:
    votes = np.zeros((n_frames, k), dtype=np.uint8)  # a frame lies in at most 4 windows
    for (a, b), label in zip(windows, labels, strict=True):
        votes[a:b, label] += 1
    return np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), -1).astype(np.int64)


def _smooth(frame_labels: IntArray, speech: npt.NDArray[np.bool_]) -> IntArray:
    """Fill unlabelled speech from the nearest label; short runs join their longer neighbour."""
    labels = frame_labels.copy()
    known = np.flatnonzero(labels >= 0)
    if known.size == 0:
        return np.where(speech, 0, -1).astype(np.int64)
    fill = np.flatnonzero(speech & (labels < 0))
    if fill.size:
        pos = np.clip(np.searchsorted(known, fill), 1, known.size - 1) if known.size > 1 else None
        if pos is None:
            labels[fill] = labels[known[0]]
        else:
            left, right = known[pos - 1], known[pos]
            nearest = np.where(np.abs(fill - left) <= np.abs(right - fill), left, right)
            labels[fill] = labels[nearest]
    labels[~speech] = -1
    for _ in range(3):
        runs = _label_runs(labels)
        changed = False
        for i, (a, b, lab) in enumerate(runs):
            if lab < 0 or b - a >= MIN_TURN:
                continue
            neighbours = [
                r
                for r in (runs[i - 1] if i else None, runs[i + 1] if i + 1 < len(runs) else None)
                if r is not None and r[2] >= 0 and (r[1] == a or r[0] == b)
            ]
            if neighbours:
                longest = max(neighbours, key=lambda r: r[1] - r[0])
                labels[a:b] = longest[2]
                changed = True
        if not changed:
            break
    return labels


def _label_runs(labels: IntArray) -> list[tuple[int, int, int]]:
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], change, [labels.size]])
    return [(int(a), int(b), int(labels[a])) for a, b in itertools.pairwise(bounds)]


def _turns(labels: IntArray) -> list[SpeakerTurn]:
    names: dict[int, str] = {}
    turns: list[SpeakerTurn] = []
    offset = (feat.FRAME / 2) / feat.SR - FRAME_SECONDS / 2  # frame centre vs. frame start
    for a, b, lab in _label_runs(labels):
        if lab < 0:
            continue
        name = names.setdefault(lab, f"S{len(names) + 1}")
        start = round(max(0.0, a * FRAME_SECONDS + offset), 3)
        end = round(b * FRAME_SECONDS + offset, 3)
        if turns and turns[-1].speaker == name and start - turns[-1].end < JOIN_GAP_SECONDS:
            turns[-1] = SpeakerTurn(start=turns[-1].start, end=end, speaker=name)
        else:
            turns.append(SpeakerTurn(start=start, end=end, speaker=name))
    return turns


def diarize_features(
    f: feat.Features, num_speakers: int | None = None, max_speakers: int = 6
) -> DiarizationResult:
    """Diarization of precomputed frame features (see `features.FeatureStream`)."""
    if (num_speakers is not None and num_speakers < 1) or max_speakers < 1:
        raise ValueError("num_speakers and max_speakers must be at least 1")
    speech = voice_activity(f.energy_db)
    windows = _windows(speech)
    if not windows:
        return DiarizationResult(speakers=0, turns=[])
    labels = _speaker_frames(f, speech, windows, num_speakers, max_speakers)
    turns = _turns(_smooth(labels, speech))
    count = len({t.speaker for t in turns})
    log.info(
        "diarized %.1fs of audio: %d speakers, %d turns", len(f) * FRAME_SECONDS, count, len(turns)
    )
    return DiarizationResult(speakers=count, turns=turns)


def _blocks(signal: npt.ArrayLike, sr: int) -> Iterator[npt.NDArray[np.float32]]:
    # Imported here: scipy.signal takes ~0.5 s to import and only foreign rates need it.
    from scipy.signal import resample_poly

    data = np.asarray(signal, dtype=np.float32).reshape(-1)
    step = BLOCK_SECONDS * sr
    for i in range(0, data.size, step):
        block = data[i : i + step]
        yield block if sr == feat.SR else resample_poly(block, feat.SR, sr).astype(np.float32)


def diarize(
    signal: npt.ArrayLike, sr: int = 16000, num_speakers: int | None = None, max_speakers: int = 6
) -> DiarizationResult:
    """Speaker turns of a mono float signal (any rate; resampled to 16 kHz block by block)."""
    f, _ = feat.features_of(_blocks(signal, sr))
    return diarize_features(f, num_speakers=num_speakers, max_speakers=max_speakers)


def diarize_file(
    path: str, num_speakers: int | None = None, max_speakers: int = 6
) -> DiarizationResult:
    """Diarize an audio file decoded by ffmpeg in blocks: an hour never sits in memory."""
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-nostdin",
        "-i",
        path,
        "-f",
        "f32le",
        "-ac",
        "1",
        "-ar",
        str(feat.SR),
        "-",
    ]
    stream = feat.FeatureStream()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while chunk := proc.stdout.read(4 * feat.SR * BLOCK_SECONDS):
            stream.push(np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype=np.float32))
        error = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise PermanentError(f"cannot decode audio for diarization: {error[-300:]}")
    return diarize_features(stream.finish(), num_speakers=num_speakers, max_speakers=max_speakers)


__all__ = ["assign_speakers", "diarize", "diarize_features", "diarize_file"]

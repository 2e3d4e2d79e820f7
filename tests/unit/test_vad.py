"""Silero run once per chunk: the stretches cut here from its kept probabilities are the ones
faster-whisper's own `get_speech_timestamps` finds, and a chunk's three readers (the coverage
check's speech, its pause test, the diarization features) share one run of the model.

Real speech from espeak-ng with pauses of several lengths; the real bundled Silero model.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from mina import synth, vad
from mina.insights import embeddings, features, speaker_model
from mina.settings import get_settings

SR = vad.RATE
LINES = [
    "The budget review moves to Thursday because the numbers are not ready.",
    "Please send the updated forecast to the whole team before lunch.",
    "Okay.",
    "We will meet again next week to decide on the hiring plan.",
]
PAUSES = [0.3, 0.6, 1.2, 2.5]  # seconds after each line: some bridged, some split


def _spoken(text: str, tmp: Path, n: int) -> np.ndarray:
    raw = tmp / f"line{n}.wav"
    synth.make_meeting([synth.Line("Alice" if n % 2 else "Bob", text)], raw)
    cmd = ["ffmpeg", "-v", "error", "-i", str(raw), "-f", "f32le", "-ac", "1", "-ar", str(SR), "-"]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(out, dtype=np.float32)


@pytest.fixture(scope="module")
def signal(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    tmp = tmp_path_factory.mktemp("vad")
    rng = np.random.default_rng(5)
    parts = [np.zeros(int(0.7 * SR), dtype=np.float32)]
    for n, (text, pause) in enumerate(zip(LINES, PAUSES, strict=True)):
        parts += [_spoken(text, tmp, n), np.zeros(int(pause * SR), dtype=np.float32)]
    x = np.concatenate(parts)
    # a little noise under everything, so probabilities sit near the thresholds too
    return (x + rng.normal(scale=0.003, size=x.size)).astype(np.float32)


OPTIONS = [
    vad.COVERAGE,
    features.SPEECH,
    vad.Options(),
    vad.Options(threshold=0.3, min_speech_ms=500, min_silence_ms=100, pad_ms=30),
    vad.Options(threshold=0.7, min_speech_ms=0, min_silence_ms=1000, pad_ms=400),
]


def _reference(x: np.ndarray, o: vad.Options) -> list[tuple[int, int]]:
    found = get_speech_timestamps(
        x,
        VadOptions(
            threshold=o.threshold,
            min_speech_duration_ms=o.min_speech_ms,
            min_silence_duration_ms=o.min_silence_ms,
            speech_pad_ms=o.pad_ms,
        ),
        sampling_rate=SR,
    )
    return [(s["start"], s["end"]) for s in found]


@pytest.mark.parametrize("options", OPTIONS)
def test_stretches_are_faster_whispers_own(signal: np.ndarray, options: vad.Options) -> None:
    # several lengths: cut inside speech, inside a pause, and a whole number of frames
    for size in (signal.size, signal.size - 12_345, 512 * (signal.size // 1024), 40_000):
        x = np.ascontiguousarray(signal[:size])
        ours = vad.stretches(x, options)
        assert ours == _reference(x, options)
        assert ours, "speech must be found, or the comparison says little"


def test_a_chunks_three_readers_run_the_model_once(signal: np.ndarray) -> None:
    x = signal[1234:].copy()  # a signal no other test has asked for
    before = vad.model_runs()
    spans = vad.speech(x)
    quiet = [vad.quiet(x, t, 0.1) for t in np.arange(0.0, x.size / SR, 0.37)]
    found = features.speech_of(x.copy())  # the features read the chunk's WAV again: a copy
    assert vad.model_runs() - before == 1
    assert [(round(s.start * SR), round(s.end * SR)) for s in spans] == _reference(x, vad.COVERAGE)
    reference = [(a / SR, b / SR) for a, b in _reference(x, features.SPEECH)]
    reference = [(a, b) for a, b in reference if b - a >= features.MIN_SPEECH]
    assert found.tolist() == [list(r) for r in reference]
    # the pause test reads the frames as it did with its own run of the model
    direct = np.asarray(get_vad_model()(x[: x.size - x.size % 512].copy())).reshape(-1)
    padded = np.asarray(get_vad_model()(np.pad(x, (0, -x.size % 512)))).reshape(-1)
    assert direct.size < padded.size  # the last frame differs: compare on the padded run
    expected = []
    for t in np.arange(0.0, x.size / SR, 0.37):
        first = max(0, int((t - 0.1) * SR) // 512)
        last = min(padded.size, int((t + 0.1) * SR) // 512 + 1)
        expected.append(first >= last or bool(np.all(padded[first:last] < vad.QUIET_PROBABILITY)))
    assert quiet == expected
    assert any(quiet) and not all(quiet)


def test_another_signal_is_another_run(signal: np.ndarray) -> None:
    x = signal[: 10 * SR].copy()
    before = vad.model_runs()
    vad.speech(x)
    x[5000] += 0.01
    vad.speech(x)
    assert vad.model_runs() - before == 2


def test_a_chunks_features_are_what_the_reference_speech_gives(
    signal: np.ndarray, tmp_path: Path
) -> None:
    """The diarization features from the shared run: the same speech, windows and embeddings
    as computed from faster-whisper's own `get_speech_timestamps` on the same chunk."""
    model = speaker_model.load(get_settings().speaker_model, tmp_path)
    x = signal[77:].copy()
    ours = features.of_samples(x, model)
    found = [(a / SR, b / SR) for a, b in _reference(x, features.SPEECH)]
    speech = np.asarray([(a, b) for a, b in found if b - a >= features.MIN_SPEECH]).reshape(-1, 2)
    windows = features.windows_of(speech, x.size / SR)
    bank = embeddings.fbank(x)
    width = embeddings.frame_count(round(features.WINDOW * SR))
    cuts = [
        bank[min(round(a * SR / embeddings.HOP), bank.shape[0] - width) :][:width]
        for a, _ in windows
    ]
    reference = model.embed(cuts)
    assert len(ours) > 10
    np.testing.assert_array_equal(ours.speech, speech)
    np.testing.assert_array_equal(ours.windows, windows)
    np.testing.assert_allclose(ours.embeddings, reference, atol=1e-6)

"""The local transcriber on generated audio: a long lead-in, a 7 s pause, pure silence.

espeak-ng speaks, sox pads and joins; the real tiny.en model and the bundled Silero VAD run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mina import synth, vad
from mina.audio import read_normalized
from mina.providers.whisper import WhisperTranscriber
from mina.settings import Settings
from tests.fixtures.audio import wer

FIRST = "The budget review moves to Thursday because the numbers are not ready."
SECOND = "Please send the updated forecast to the whole team before lunch."


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True, timeout=60)


def spoken(text: str, dst: Path) -> Path:
    raw = dst.with_suffix(".espeak.wav")
    synth.make_meeting([synth.Line("Alice", text)], raw)
    sox(str(raw), "-r", "16000", "-c", "1", "-b", "16", str(dst))
    return dst


def silent(seconds: float, dst: Path) -> Path:
    sox("-n", "-r", "16000", "-c", "1", "-b", "16", str(dst), "trim", "0", str(seconds))
    return dst


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> WhisperTranscriber:
    data = tmp_path_factory.mktemp("data")
    return WhisperTranscriber(Settings(worker_threads=1, data_dir=data))


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vad")
    return {
        "first": spoken(FIRST, d / "first.wav"),
        "second": spoken(SECOND, d / "second.wav"),
        "pause": silent(7.0, d / "pause.wav"),
        "lead": silent(14.0, d / "lead.wav"),
        "silence": silent(30.0, d / "silence.wav"),
    }


def joined(parts: dict[str, Path], names: list[str], dst: Path) -> Path:
    sox(*[str(parts[n]) for n in names], str(dst))
    return dst


def words_of(result: object) -> list[tuple[float, float, str]]:
    return [(w.start, w.end, w.text) for s in result.segments for w in s.words or []]  # type: ignore[attr-defined]


def test_speech_after_a_long_lead_in_is_all_there(
    transcriber: WhisperTranscriber, parts: dict[str, Path], tmp_path: Path
) -> None:
    wav = joined(parts, ["lead", "first", "second"], tmp_path / "lead_in.wav")
    samples = read_normalized(wav)
    assert samples is not None
    speech = vad.speech(samples)
    assert speech and speech[0].start > 13.0  # the VAD hears nothing in the lead-in
    result = transcriber.transcribe(wav, "en")
    assert wer(f"{FIRST} {SECOND}", result.text) <= 0.2
    assert result.warnings == []
    assert all(start > 13.0 for start, _, _ in words_of(result))
    assert result.segments[0].start > 13.0  # no segment claims the silence before


def test_a_seven_second_pause_keeps_both_sides_and_nothing_inside(
    transcriber: WhisperTranscriber, parts: dict[str, Path], tmp_path: Path
) -> None:
    wav = joined(parts, ["first", "pause", "second"], tmp_path / "pause.wav")
    first = read_normalized(parts["first"])
    assert first is not None
    pause_from, pause_to = first.size / vad.RATE, first.size / vad.RATE + 7.0
    result = transcriber.transcribe(wav, "en")
    assert wer(f"{FIRST} {SECOND}", result.text) <= 0.2
    inside = [w for w in words_of(result) if pause_from + 0.5 < (w[0] + w[1]) / 2 < pause_to - 0.5]
    assert inside == []
    assert result.warnings == []


def test_pure_silence_gives_no_text_and_no_warning(
    transcriber: WhisperTranscriber, parts: dict[str, Path]
) -> None:
    result = transcriber.transcribe(parts["silence"], "en")
    assert result.segments == [] and result.warnings == []


def test_words_carry_their_own_times_inside_their_segment(
    transcriber: WhisperTranscriber, parts: dict[str, Path]
) -> None:
    result = transcriber.transcribe(parts["first"], "en")
    assert result.segments
    for seg in result.segments:
        assert seg.words
        assert seg.text == "".join(w.text for w in seg.words).strip()
        assert seg.start <= seg.words[0].start and seg.words[-1].end <= seg.end
        assert all(w.start <= w.end for w in seg.words)


def test_quiet_is_frame_by_frame(parts: dict[str, Path], tmp_path: Path) -> None:
    """A short pause is quiet although `speech` bridges it; inside a word is not."""
    silence = tmp_path / "short.wav"
    sox("-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "0.4")
    both = joined({**parts, "short": silence}, ["first", "short", "second"], tmp_path / "b.wav")
    samples = read_normalized(both)
    first = read_normalized(parts["first"])
    assert samples is not None and first is not None
    end_of_first = max(s.end for s in vad.speech(first))
    middle_of_pause = first.size / vad.RATE + 0.2
    assert end_of_first < middle_of_pause
    assert vad.quiet(samples, middle_of_pause, 0.1)
    assert not vad.quiet(samples, end_of_first / 2, 0.1)
    assert vad.quiet(np.zeros(vad.RATE, dtype=np.float32), 0.5, 0.1)

"""mina.synth with real espeak-ng and ffmpeg: scripts, timings, voices, formats, the sample."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from mina import audio, probe, synth

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "meeting.ogg"


def median_pitch_hz(signal: np.ndarray, sr: int = 16000) -> float:
    """Median fundamental frequency of the voiced 40 ms frames (autocorrelation, 70-400 Hz)."""
    frame, found = int(0.04 * sr), []
    for i in range(0, len(signal) - frame, frame):
        w = signal[i : i + frame] - signal[i : i + frame].mean()
        if np.sqrt(np.mean(w**2)) < 0.02:
            continue
        ac = np.correlate(w, w, "full")[frame - 1 :]
        lo, hi = sr // 400, sr // 70
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            found.append(sr / lag)
    assert found, "no voiced frames"
    return float(np.median(found))


@pytest.fixture(scope="module")
def one_minute(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.Script]:
    path = tmp_path_factory.mktemp("synth") / "meeting.wav"
    return path, synth.make_meeting(synth.default_meeting_lines(1.0), path)


def test_default_lines_are_a_deterministic_two_person_meeting() -> None:
    lines = synth.default_meeting_lines(1.0)
    assert lines == synth.default_meeting_lines(1.0)
    assert {line.speaker for line in lines} == {"Alice", "Bob"}
    text = " ".join(line.text for line in lines)
    for planted in (
        "I'll send the report by Friday",
        "Bob, can you update the roadmap by next Monday?",
        "schedule a review on Thursday",
        "We decided to ship version two in March",
        "Um,",
        "you know",
    ):
        assert planted in text
    assert sum(line.text.endswith("?") for line in lines) >= 2


def test_default_lines_grow_with_the_minutes() -> None:
    short, long = synth.default_meeting_lines(0.5), synth.default_meeting_lines(6.0)
    assert len(long) > 3 * len(short)
    assert synth.estimate_seconds(long) == pytest.approx(360, rel=0.1)
    assert long[:3] == short[:3]
    assert long[-1].speaker != long[-2].speaker


def test_script_times_match_the_audio(one_minute: tuple[Path, synth.Script]) -> None:
    path, script = one_minute
    assert audio.duration(path) == pytest.approx(script.duration, abs=0.01)
    assert script.lines[0].start == 0.0
    assert script.lines[-1].end == pytest.approx(script.duration, abs=1e-6)
    for before, after in zip(script.lines, script.lines[1:], strict=False):
        assert before.start < before.end
        assert after.start - before.end == pytest.approx(0.6, abs=0.001)
    assert 50 < script.duration < 75
    assert script.text.startswith("Good morning, Bob.")
    assert script.speakers == ["Alice", "Bob"]


def test_the_two_voices_differ_in_pitch(one_minute: tuple[Path, synth.Script]) -> None:
    path, script = one_minute
    pitch: dict[str, list[float]] = {"Alice": [], "Bob": []}
    for line in script.lines[:6]:
        window = audio.read_pcm(path, start=line.start, duration=line.end - line.start)
        pitch[line.speaker].append(median_pitch_hz(window))
    assert min(pitch["Alice"]) > 1.5 * max(pitch["Bob"])


def test_to_text_has_times_and_speakers(one_minute: tuple[Path, synth.Script]) -> None:
    rows = one_minute[1].to_text().splitlines()
    assert len(rows) == len(one_minute[1].lines)
    assert rows[0].startswith("[00:00.00 - 00:0") and "] Alice: Good morning" in rows[0]


@pytest.mark.parametrize("fmt", ["ogg", "webm", "mp3", "m4a", "flac"])
def test_make_meeting_writes_each_format(tmp_path: Path, fmt: str) -> None:
    lines = [synth.Line("Bob", "Let's ship it."), synth.Line("Alice", "Yes, in March.")]
    out = tmp_path / f"short.{fmt}"
    script = synth.make_meeting(lines, out, gap_seconds=0.3)
    assert probe.sniff(out.read_bytes()[:64]) is not None
    assert probe.probe(out) == pytest.approx(script.duration, abs=0.1)


def test_custom_voices_and_missing_voice(tmp_path: Path) -> None:
    lines = [synth.Line("Carol", "Hello there.")]
    with pytest.raises(ValueError, match="Carol"):
        synth.make_meeting(lines, tmp_path / "x.wav")
    script = synth.make_meeting(lines, tmp_path / "x.wav", voices={"Carol": "en-gb+f2"})
    with wave.open(str(tmp_path / "x.wav"), "rb") as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(script.duration)


def test_main_writes_audio_and_script(tmp_path: Path) -> None:
    out = tmp_path / "demo.ogg"
    synth.main([str(out), "--minutes", "0.3"])
    rows = (tmp_path / "demo.txt").read_text().splitlines()
    assert rows and all("] Alice: " in r or "] Bob: " in r for r in rows)
    assert probe.probe(out) > 10


def test_shipped_sample_is_what_the_generator_makes() -> None:
    assert SAMPLE.stat().st_size < 300_000
    assert 70 < probe.probe(SAMPLE) < 85
    rows = SAMPLE.with_suffix(".txt").read_text().splitlines()
    spoken = [row.split("] ", 1)[1] for row in rows]
    expected = [f"{ln.speaker}: {ln.text}" for ln in synth.default_meeting_lines(1.25)]
    assert spoken == expected

"""Real audio for unit tests: a short two-voice meeting, encoded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mina import audio, synth

FORMATS = ("wav", "ogg", "webm", "mp3", "m4a", "flac")

SHORT_MEETING = [
    synth.Line("Alice", "I'll send the report by Friday."),
    synth.Line("Bob", "Thanks. Can you update the roadmap by next Monday?"),
]


@pytest.fixture(scope="session")
def meeting_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About seven seconds of espeak-ng speech, two voices, as the WAV espeak-ng writes."""
    path = tmp_path_factory.mktemp("speech") / "meeting.wav"
    synth.make_meeting(SHORT_MEETING, path)
    return path


@pytest.fixture(scope="session")
def encoded(meeting_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The meeting in every container we accept: wav, ogg/opus, webm/opus, mp3, m4a/aac, flac."""
    out = tmp_path_factory.mktemp("encoded")
    files = {}
    for fmt in FORMATS:
        files[fmt] = out / f"meeting.{fmt}"
        audio.encode(meeting_wav, files[fmt], bitrate="48k")
    return files

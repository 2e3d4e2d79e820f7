"""Chunk boundaries: a word cut by the boundary comes out once and right.

Real espeak-ng speech cut inside a word, the real tiny.en model; chunks are rows in memory
and their normalized audio sits in local storage, where the pipeline keeps it.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from mina import synth, vad
from mina.models import Chunk
from mina.pipeline import seams
from mina.pipeline.transcribe import normalized_key
from mina.providers.whisper import WhisperTranscriber, samples_of
from mina.settings import Settings
from mina.storage.local import LocalStorage
from mina.transcript import Segment, Word
from tests.fixtures.audio import normalize_words, wer

TEXT = (
    "The quarterly marketing presentation is scheduled for tomorrow afternoon in the big "
    "conference room. Everyone should bring the updated customer numbers."
)


def write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> WhisperTranscriber:
    return WhisperTranscriber(Settings(worker_threads=1, data_dir=tmp_path_factory.mktemp("d")))


@pytest.fixture(scope="module")
def cut_in_a_word(
    transcriber: WhisperTranscriber, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Chunk], LocalStorage]:
    """Two chunks, the cut in the middle of "presentation" (found by the model's word times)."""
    d = tmp_path_factory.mktemp("seam")
    synth.make_meeting([synth.Line("Alice", TEXT)], d / "raw.wav")
    subprocess.run(
        ["sox", str(d / "raw.wav"), "-r", "16000", "-c", "1", "-b", "16", str(d / "all.wav")],
        check=True,
        timeout=60,
    )
    samples = samples_of(d / "all.wav")
    words = [w for s in transcriber.transcribe(d / "all.wav", "en").segments for w in s.words or []]
    word = next(w for w in words if "presentation" in w.text)
    return chunks_cut_at(samples, int((word.start + word.end) / 2 * 16000), d, transcriber)


def chunks_cut_at(
    samples: np.ndarray, cut: int, d: Path, transcriber: WhisperTranscriber
) -> tuple[list[Chunk], LocalStorage]:
    """Two transcribed chunks, `samples` cut at sample `cut`, their audio in local storage."""
    storage = LocalStorage(d / "blobs")
    rows = []
    for index, part in enumerate([samples[:cut], samples[cut:]]):
        path = write(d / f"{index}.wav", part)
        storage.put_file(normalized_key("c", index), path)
        result = transcriber.transcribe(path, "en")
        rows.append(
            Chunk(
                id=f"chunk{index}",
                conversation_id="c",
                index=index,
                status="transcribed",
                attempts=1,
                duration=part.size / 16000,
                segments=[s.model_dump(exclude_none=True) for s in result.segments],
            )
        )
    return rows, storage


def text(segments: list[Segment]) -> str:
    return " ".join(s.text for s in segments)


def test_the_word_cut_by_the_boundary_comes_out_once_and_right(
    cut_in_a_word: tuple[list[Chunk], LocalStorage], transcriber: WhisperTranscriber
) -> None:
    rows, storage = cut_in_a_word
    left, right = seams.Side.of(rows[0]), seams.Side.of(rows[1])
    seam = seams.make(left, right, transcriber, storage, "c", 4.0, "en")
    assert seam["segments"], "the cut is inside speech: the seam is transcribed"
    assert seam["from"] < 0 < seam["to"]
    assert (seam["left_attempts"], seam["right_attempts"]) == (1, 1)
    rows[1].seam = seam
    try:
        joined = seams.joined(rows)
    finally:
        rows[1].seam = None
    words = normalize_words(text(joined)).split()
    assert words.count("presentation") == 1
    assert wer(TEXT, text(joined)) <= 0.05
    assert [s.start for s in joined] == sorted(s.start for s in joined)
    assert all(s.chunk_index is not None for s in joined)


def test_a_cut_in_a_short_pause_between_sentences_needs_no_seam(
    transcriber: WhisperTranscriber, tmp_path: Path
) -> None:
    """The VAD's stretches bridge pauses under 0.5 s; frame by frame, a 0.4 s pause at the cut
    shows no word crosses it: no transcription, both chunks' words stand, each word once."""
    first, second = TEXT.split(". ")
    parts = []
    for n, sentence in enumerate((first + ".", second)):
        synth.make_meeting([synth.Line("Alice", sentence)], tmp_path / f"{n}.raw.wav")
        subprocess.run(
            ["sox", str(tmp_path / f"{n}.raw.wav"), "-r", "16000", "-c", "1", "-b", "16",
             str(tmp_path / f"{n}.wav"), "silence", "1", "0.05", "0.1%", "reverse", "silence",
             "1", "0.05", "0.1%", "reverse"],
            check=True,
            timeout=60,
        )  # fmt: skip
        parts.append(samples_of(tmp_path / f"{n}.wav"))
    pause = np.zeros(int(0.4 * 16000), dtype=np.float32)
    samples = np.concatenate([parts[0], pause, parts[1]])
    rows, storage = chunks_cut_at(samples, parts[0].size + pause.size // 2, tmp_path, transcriber)
    left, right = seams.Side.of(rows[0]), seams.Side.of(rows[1])
    assert len(vad.speech(samples)) == 1, "one stretch of speech: the old check would seam it"
    seam = seams.make(left, right, transcriber, storage, "c", 4.0, "en")
    assert seam["segments"] is None
    rows[1].seam = seam
    joined = text(seams.joined(rows))
    assert wer(TEXT, joined) <= 0.05
    assert normalize_words(joined).split().count("room") == 1


def test_a_stale_seam_is_ignored(cut_in_a_word: tuple[list[Chunk], LocalStorage]) -> None:
    rows, _ = cut_in_a_word
    own = text(seams.joined(rows))
    rows[1].seam = {
        "left_id": "chunk0",
        "left_attempts": 0,  # made from an earlier transcription of the left chunk
        "right_attempts": 1,
        "from": -1.0,
        "to": 1.0,
        "segments": [{"start": -1.0, "end": 1.0, "text": "stale", "words": []}],
    }
    try:
        assert text(seams.joined(rows)) == own
    finally:
        rows[1].seam = None


def chunk(index: int, segments: list[Segment], seam: dict[str, object] | None = None) -> Chunk:
    return Chunk(
        id=f"k{index}",
        conversation_id="c",
        index=index,
        status="transcribed",
        attempts=1,
        duration=10.0,
        segments=[s.model_dump(exclude_none=True) for s in segments],
        seam=seam,
    )


def seg(*words: tuple[float, float, str]) -> Segment:
    ws = [Word(start=a, end=b, text=f" {t}") for a, b, t in words]
    return Segment(start=ws[0].start, end=ws[-1].end, text=" ".join(t for *_, t in words), words=ws)


def test_a_seam_replaces_the_words_in_its_window_and_only_those() -> None:
    left = chunk(0, [seg((7.0, 7.5, "we"), (8.0, 8.5, "need"), (9.6, 10.0, "pre"))])
    seam = {
        "left_attempts": 1,
        "right_attempts": 1,
        "from": -2.0,
        "to": 1.0,
        "segments": [seg((-2.0, -1.5, "need"), (-0.4, 0.6, "presentation")).model_dump()],
    }
    right = chunk(1, [seg((0.0, 0.5, "sentation"), (1.2, 1.6, "today"))], seam)
    joined = seams.joined([left, right])
    assert text(joined) == "we need presentation today"
    assert [s.chunk_index for s in joined] == [0, 1, 1]
    assert joined[1].start == 8.0 and joined[1].end == 10.6  # on the meeting's timeline


def test_a_silent_seam_keeps_both_chunks_words() -> None:
    left = chunk(0, [seg((7.0, 7.5, "done"))])
    seam = {"left_attempts": 1, "right_attempts": 1, "from": -3.0, "to": 3.0, "segments": None}
    right = chunk(1, [seg((4.0, 4.5, "next"))], seam)
    assert text(seams.joined([left, right])) == "done next"


def test_the_window_snaps_to_a_pause_and_never_cuts_a_word() -> None:
    words = [seg((5.0, 5.4, "one"), (5.4, 6.3, "two"), (6.8, 7.2, "three"), (7.2, 9.9, "four"))]
    left = seams.Side("a", 0, 1, 10.0, words)
    right = seams.Side("b", 1, 1, 10.0, [seg((0.0, 3.6, "long"), (3.6, 4.4, "word"))])
    a, b = seams.window(left, right, 4.0)
    assert a == pytest.approx(6.55)  # the pause between "two" and "three"
    assert b == 3.6  # no pause near 4 s: the start of the word it falls in


def test_remote_providers_get_no_seams(tmp_path: Path) -> None:
    """A transcriber without word times (OpenAI, AssemblyAI, simulated) has nothing to join
    by: no seam is made and nothing is read."""

    class Remote:
        name = "openai"

    assert seams.repair("c", None, Remote(), LocalStorage(tmp_path), 6.0) == 0


def marker(start: float, end: float = 30.0) -> Segment:
    """The open tail the transcriber left for the seam (mina.providers.whisper)."""
    return Segment(start=start, end=end, text="", flag="open")


def long_chunk(index: int, segments: list[Segment], seam: dict[str, object] | None = None) -> Chunk:
    row = chunk(index, segments, seam)
    row.duration = 30.0
    return row


def test_the_seam_window_reaches_back_over_an_open_tail() -> None:
    words = [seg((18.0, 18.4, "so"), (19.0, 19.5, "we"), (21.0, 21.5, "will"), (22.0, 22.4, "go"))]
    left = seams.Side("a", 0, 1, 30.0, [*words, marker(22.4)])
    right = seams.Side("b", 1, 1, 30.0, [seg((0.5, 0.9, "then"))])
    a, _ = seams.window(left, right, 6.0)
    assert a <= 22.4 - seams.TAIL_CONTEXT / 2, "the seam hears words before the open tail"
    plain = seams.Side("a", 0, 1, 30.0, words)
    assert seams.window(plain, right, 6.0)[0] > 22.4  # without the tail: the last 6 s only


def test_an_open_tail_marker_is_never_read_and_its_own_transcription_fills_it() -> None:
    """A last chunk's open tail transcribed on its own (no seam) is read in its place; once a
    seam covers the boundary (the right neighbour retried), the seam's words are read instead."""
    own = [seg((20.0, 20.5, "we"), (21.0, 22.0, "meet"))]
    tail = {
        "attempts": 1,
        "segments": [seg((22.5, 23.0, "on"), (23.2, 24.0, "friday")).model_dump()],
    }
    left = long_chunk(0, [*own, marker(22.0)], {"tail": tail})
    assert text(seams.joined([left])) == "we meet on friday"
    left.attempts = 2  # transcribed again since: the tail's words are stale
    assert text(seams.joined([left])) == "we meet"
    left.attempts = 1
    seam = {
        "left_attempts": 1,
        "right_attempts": 1,
        "from": -9.0,
        "to": 1.0,
        "segments": [
            seg((-9.0, -8.0, "meet"), (-7.5, -7.0, "on"), (-6.8, -6.0, "friday")).model_dump()
        ],
    }
    right = long_chunk(1, [seg((2.0, 2.5, "then"))], seam)
    assert text(seams.joined([left, right])) == "we meet on friday then"

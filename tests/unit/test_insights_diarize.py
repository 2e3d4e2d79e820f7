"""Diarization of real synthetic speech: espeak-ng voices, known line times, no mocks."""

from __future__ import annotations

import itertools
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mina.errors import PermanentError
from mina.insights import features
from mina.insights.diarize import assign_speakers, diarize, diarize_features, diarize_file
from mina.insights.schemas import DiarizationResult, SpeakerTurn
from mina.transcript import Segment

SR = 16000
GAP = 0.5
VOICES = {
    "high": ["-v", "en-us+f3", "-p", "70"],  # ~250 Hz
    "low": ["-v", "en-us+m3", "-p", "30"],  # ~90 Hz
    "mid": ["-v", "en-us+f2", "-p", "35"],  # ~160 Hz
}
LINES = [
    "Good morning everyone, let us review the launch plan for the new pricing page.",
    "I think the checkout flow still has a few bugs that we need to fix first.",
    "How many customers reported problems with the payment form last week?",
    "About thirty people wrote to support, mostly about the card validation.",
    "Okay, then I will ask the front end team to prioritize that fix.",
    "Can you also check whether the mobile layout is broken on small screens?",
    "Sure, I will test it on my phone this afternoon and send you the results.",
    "We should decide today if the launch moves to next Monday or stays on Friday.",
    "I would rather move it, the risk of a broken checkout is too high.",
    "Agreed, let us go with next Monday and tell marketing about the change.",
    "I will update the announcement email and the blog post by tomorrow.",
    "Great, and who is going to talk to the sales team about the new prices?",
    "I can do that, I have a meeting with them on Thursday anyway.",
    "Perfect, then we are done with pricing, let us move to hiring.",
]


@dataclass
class Meeting:
    path: Path
    signal: np.ndarray
    lines: list[tuple[float, float, str]]  # start, end, true speaker


def _decode(path: Path) -> np.ndarray:
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(SR), "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float32)


def _make_meeting(workdir: Path, voices: list[str]) -> Meeting:
    """Lines in turn by `voices`, 0.5 s apart, trimmed so every line's time is exact."""
    pieces: list[np.ndarray] = []
    lines: list[tuple[float, float, str]] = []
    t = 0.0
    for i, text in enumerate(LINES):
        who = voices[i % len(voices)]
        raw = workdir / f"line{i}.wav"
        subprocess.run(["espeak-ng", *VOICES[who], "-w", str(raw), text], check=True)
        audio = _decode(raw)
        loud = np.flatnonzero(np.abs(audio) > 1e-3)
        audio = audio[loud[0] : loud[-1] + 1]
        lines.append((t, t + audio.size / SR, who))
        pieces += [audio, np.zeros(int(GAP * SR), dtype=np.float32)]
        t += audio.size / SR + GAP
    signal = np.concatenate(pieces)
    path = workdir / "meeting.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return Meeting(path, signal, lines)


def accuracy(meeting: Meeting, result: DiarizationResult) -> float:
    """Share of true speech time given to the right speaker, under the best label mapping."""
    step = 0.01
    n = int(meeting.lines[-1][1] / step) + 1
    truth_names = sorted({who for _, _, who in meeting.lines})
    hyp_names = sorted({t.speaker for t in result.turns})
    ref = np.full(n, -1)
    hyp = np.full(n, -1)
    for start, end, who in meeting.lines:
        ref[int(start / step) : int(end / step)] = truth_names.index(who)
    for turn in result.turns:
        hyp[int(turn.start / step) : int(turn.end / step)] = hyp_names.index(turn.speaker)
    speech = ref >= 0
    size = max(len(truth_names), len(hyp_names))
    best = 0.0
    for perm in itertools.permutations(range(size)):
        mapped = np.where(hyp >= 0, np.array(perm)[np.maximum(hyp, 0)], -1)
        best = max(best, float(np.mean(mapped[speech] == ref[speech])))
    return best


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return _make_meeting(tmp_path_factory.mktemp("two"), ["high", "low"])


@pytest.fixture(scope="module")
def three_voices(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return _make_meeting(tmp_path_factory.mktemp("three"), ["high", "low", "mid"])


def test_two_voices_count_estimated_and_speech_assigned(two_voices: Meeting) -> None:
    result = diarize(two_voices.signal)
    assert result.speakers == 2
    assert accuracy(two_voices, result) >= 0.9
    assert result.turns[0].speaker == "S1"
    assert {t.speaker for t in result.turns} == {"S1", "S2"}


def test_file_is_decoded_in_blocks_with_the_same_answer(two_voices: Meeting) -> None:
    result = diarize_file(str(two_voices.path))
    assert result.speakers == 2
    assert accuracy(two_voices, result) >= 0.9


def _chunks(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Consecutive slices of `sizes` samples (the rest in the last one)."""
    bounds = np.cumsum([0, *sizes])
    return [signal[a:b] for a, b in itertools.pairwise(bounds)] + [signal[bounds[-1] :]]


def test_features_kept_per_chunk_give_the_whole_files_answer(
    three_voices: Meeting, tmp_path: Path
) -> None:
    # Chunks as cut by ffmpeg: lengths a few ms off the mark, not whole hops; each chunk's
    # features are computed alone and stored, as transcription does.
    sizes = [5 * SR + 37, 5 * SR - 101, 5 * SR + 159, 5 * SR + 1, 5 * SR - 80] * 3
    parts = []
    for n, chunk in enumerate(_chunks(three_voices.signal, sizes)):
        path = tmp_path / f"{n:06d}.npz"
        features.save(features.of_samples(chunk), chunk.size, path)
        parts.append(features.load(path))
    joined = features.assemble(parts)
    whole = features.of_samples(three_voices.signal)

    # The same frame grid: the first chunk's frames are the whole file's, and at the end (after
    # 15 boundaries) the frames still line up best without a shift: no drift (a chunk not
    # starting on a whole hop is within half a hop of the grid).
    assert abs(len(joined) - len(whole)) <= 1
    first = sizes[0] // 160 - 2
    assert np.allclose(joined.mfcc[:first], whole.mfcc[:first], atol=1e-3)
    tail = slice(len(whole) - 1200, len(whole) - 5)

    def misfit(lag: int) -> float:
        shifted = slice(tail.start + lag, tail.stop + lag)
        return float(np.abs(joined.energy_db[shifted] - whole.energy_db[tail]).mean())

    assert misfit(0) < min(misfit(-1), misfit(1)) and misfit(0) < 1.5  # dB per frame

    result = diarize_features(joined)
    alone = diarize(three_voices.signal)
    assert result.speakers == 3
    assert accuracy(three_voices, result) >= max(0.9, accuracy(three_voices, alone) - 0.02)


def test_features_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not numpy")
    with pytest.raises(ValueError):
        features.load(bad)
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(ValueError):
        features.load(tmp_path / "other.npz")


def test_an_empty_chunk_keeps_the_grid(two_voices: Meeting) -> None:
    first, rest = two_voices.signal[: 3 * SR], two_voices.signal[3 * SR :]
    nothing = np.zeros(0, dtype=np.float32)
    parts = [(features.of_samples(x), x.size) for x in (first, nothing, rest)]
    joined = features.assemble(parts)
    assert abs(len(joined) - len(features.of_samples(two_voices.signal))) <= 1


def test_three_voices(three_voices: Meeting) -> None:
    result = diarize(three_voices.signal)
    assert result.speakers == 3
    assert accuracy(three_voices, result) >= 0.9


def test_given_number_of_speakers_is_used(three_voices: Meeting) -> None:
    assert diarize(three_voices.signal, num_speakers=2).speakers == 2
    assert diarize(three_voices.signal, max_speakers=2).speakers <= 2


def test_one_voice_is_one_speaker(tmp_path: Path) -> None:
    meeting = _make_meeting(tmp_path, ["low"])
    result = diarize(meeting.signal)
    assert result.speakers == 1
    assert accuracy(meeting, result) >= 0.9


def test_other_sample_rates_are_resampled(two_voices: Meeting) -> None:
    from scipy.signal import resample_poly

    at_8k = resample_poly(two_voices.signal, 1, 2).astype(np.float32)
    result = diarize(at_8k, sr=8000)
    assert result.speakers == 2
    assert accuracy(two_voices, result) >= 0.9


def test_transcript_lines_get_the_right_speakers(two_voices: Meeting) -> None:
    segments = [
        Segment(start=s, end=e, text=f"line {i}") for i, (s, e, _) in enumerate(two_voices.lines)
    ]
    labelled = assign_speakers(segments, diarize(two_voices.signal).turns)
    mapping = {
        who: seg.speaker for seg, (_, _, who) in zip(labelled, two_voices.lines, strict=True)
    }
    assert len(mapping) == 2 and len(set(mapping.values())) == 2
    right = sum(
        seg.speaker == mapping[who]
        for seg, (_, _, who) in zip(labelled, two_voices.lines, strict=True)
    )
    assert right == len(segments)


def test_silence_and_tiny_signals_have_no_speakers() -> None:
    assert diarize(np.zeros(SR * 5, dtype=np.float32)) == DiarizationResult(speakers=0, turns=[])
    assert diarize(np.zeros(100, dtype=np.float32)).speakers == 0
    assert diarize(np.zeros(0, dtype=np.float32)).speakers == 0


def test_undecodable_file_is_a_permanent_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    with pytest.raises(PermanentError):
        diarize_file(str(bad))


# ---------------------------------------------------------------------------- assign_speakers

TURNS = [
    SpeakerTurn(start=0.0, end=4.0, speaker="S1"),
    SpeakerTurn(start=4.0, end=10.0, speaker="S2"),
    SpeakerTurn(start=20.0, end=25.0, speaker="S1"),
]


def test_assign_by_largest_overlap_with_fallbacks() -> None:
    segments = [
        Segment(start=0.5, end=3.0, text="a"),  # inside S1
        Segment(start=3.0, end=9.0, text="b"),  # 1 s of S1, 5 s of S2
        Segment(start=10.3, end=11.0, text="c"),  # no overlap, S2 ends 0.3 s before: nearest
        Segment(start=13.0, end=15.0, text="d"),  # nothing within 0.5 s
        Segment(start=21.0, end=21.0, text="e"),  # zero length inside S1
    ]
    labelled = assign_speakers(segments, TURNS)
    assert [s.speaker for s in labelled] == ["S1", "S2", "S2", "Unknown", "S1"]
    assert [(s.start, s.end, s.text) for s in labelled] == [
        (s.start, s.end, s.text) for s in segments
    ]


def test_provider_labels_win() -> None:
    segments = [Segment(start=0.5, end=3.0, text="a", speaker="Alice")]
    assert assign_speakers(segments, TURNS)[0].speaker == "Alice"


def test_turns_in_their_stored_json_form_are_accepted() -> None:
    stored = [t.model_dump() for t in TURNS]
    segments = [Segment(start=5.0, end=6.0, text="a")]
    assert assign_speakers(segments, stored)[0].speaker == "S2"


def test_no_turns_means_unknown() -> None:
    assert assign_speakers([Segment(start=0, end=1, text="a")], [])[0].speaker == "Unknown"

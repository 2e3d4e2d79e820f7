"""bench/corpus.py: the meeting builder's timings and the WER normalizer, on generated audio."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import (
    RATE,
    Turn,
    Utterance,
    build_meeting,
    meeting_order,
    normalize,
    read_wav,
    trim,
    wer,
    write_wav,
)


def tone(path: Path, seconds: float, hz: float, speaker: str, text: str, gain: float) -> Utterance:
    t = np.arange(int(seconds * RATE)) / RATE
    write_wav(path, (gain * np.sin(2 * np.pi * hz * t)).astype(np.float32))
    return Utterance(speaker, text, path, seconds, "generated")


@pytest.fixture()
def utts(tmp_path: Path) -> list[Utterance]:
    return [
        tone(
            tmp_path / f"u{i}.wav",
            4.0 + i,
            220.0 + 40 * i,
            "ab"[i % 2],
            f"word{i} x",
            0.05 + i / 20,
        )
        for i in range(12)
    ]


def test_turns_pauses_and_cuts_add_up_to_the_file(tmp_path: Path, utts: list[Utterance]) -> None:
    m = build_meeting(utts, out=tmp_path / "m.wav", seed=3, lead_in=5.0, long_pause=(4, 7.0))
    with wave.open(str(m.wav)) as w:
        assert w.getframerate() == RATE
        assert abs(w.getnframes() / RATE - m.seconds) < 1e-3
    assert m.turns[0].start == pytest.approx(5.0, abs=1e-3)
    assert m.pauses[0] == pytest.approx((0.0, 5.0), abs=1e-3)
    for turn, utt in zip(m.turns, utts, strict=True):
        assert turn.end - turn.start == pytest.approx(utt.seconds, abs=1e-3)
        assert turn.speaker == utt.speaker and turn.text == utt.text
    gaps = [b.start - a.end for a, b in zip(m.turns, m.turns[1:], strict=False)]
    assert gaps[3] == pytest.approx(7.0, abs=1e-3)
    assert all(0.15 - 1e-3 <= g <= 0.8 + 1e-3 for i, g in enumerate(gaps) if i != 3)
    assert m.cuts == [30.0 * k for k in range(1, int(m.seconds // 30) + 1)]
    assert m.in_speech(m.turns[2].start + 0.1) and not m.in_speech(1.0)


def test_every_turn_is_loudness_normalized(tmp_path: Path, utts: list[Utterance]) -> None:
    m = build_meeting(utts, out=tmp_path / "m.wav")
    samples = read_wav(m.wav)
    levels = [
        np.sqrt(np.mean(samples[int(t.start * RATE) + 100 : int(t.end * RATE) - 100] ** 2))
        for t in m.turns
    ]
    assert max(levels) / min(levels) < 1.05
    # The silence between turns stays silent.
    p = m.pauses[1]
    assert np.abs(samples[int(p[0] * RATE) + 10 : int(p[1] * RATE) - 10]).max() == 0.0


def test_same_seed_same_meeting_other_seed_other_pauses(
    tmp_path: Path, utts: list[Utterance]
) -> None:
    a = build_meeting(utts, out=tmp_path / "a.wav", seed=1)
    b = build_meeting(utts, out=tmp_path / "b.wav", seed=1)
    c = build_meeting(utts, out=tmp_path / "c.wav", seed=2)
    assert a.turns == b.turns and a.wav.read_bytes() == b.wav.read_bytes()
    assert a.turns != c.turns


def test_meeting_order_alternates_speakers(utts: list[Utterance]) -> None:
    order = meeting_order(utts, ("a", "b"), minutes=1.0, seed=0)
    assert sum(u.seconds for u in order) >= 60.0
    assert all(x.speaker != y.speaker for x, y in itertools.pairwise(order))
    with pytest.raises(ValueError, match="no utterances"):
        meeting_order(utts, ("a", "c"), minutes=1.0, seed=0)


def test_trim_drops_silence_around_speech() -> None:
    speech = 0.3 * np.sin(np.arange(RATE) * 0.05).astype(np.float32)
    padded = np.concatenate([np.zeros(RATE), speech, np.zeros(2 * RATE)]).astype(np.float32)
    assert abs(len(trim(padded)) / RATE - 1.1) < 0.05


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith paid $25, OK?", "mister smith paid twenty five okay"),
        ("Press 1, or #.", "press one or pound"),
        (
            "It's 2,300 people; 100% sure — um, the 3rd",
            "its two thousand three hundred people one hundred percent sure the three",
        ),
        ("Self-substantial fuel", "self substantial fuel"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_other_languages_keeps_their_letters() -> None:
    assert normalize("¿Dónde está el 2º piso?", "es") == "dónde está el 2º piso"
    assert normalize("Этот оператор, уже!", "ru") == "этот оператор уже"


def test_wer_counts_after_normalizing() -> None:
    assert wer("Press 1 for sales.", "press one for sales") == 0.0
    assert wer("a b c d", "a x c") == pytest.approx(0.5)
    assert wer("", "") == 0.0 and wer("", "hello") == 1.0


def test_quality_scores_cut_errors_skips_and_words_in_pauses(tmp_path: Path) -> None:
    from bench.quality import Meet, score, spread

    turns = [
        Turn("a", 0.0, 10.0, "one two three four five six seven eight nine ten"),
        Turn("b", 12.0, 22.0, "alpha beta gamma delta epsilon zeta eta theta iota kappa"),
        Turn("a", 26.0, 36.0, "red orange yellow green blue indigo violet black white grey"),
    ]
    meet = Meet("t", tmp_path / "t.wav", turns, [31.0], [(10.0, 12.0), (22.0, 26.0)], 36.0)
    words = [w for t in turns for w in spread(t.start, t.end, t.text)]
    perfect = score(meet, {"words": words, "wall": 1.0, "cpu": 1.0}, cached=False)
    assert perfect.wer == 0.0 and perfect.cut_errors == 0 and perfect.skipped == 0

    hyp = [w for w in words if w[2] not in {"gamma", "delta", "epsilon"}]  # a stretch skipped
    hyp.append((24.0, 24.3, "hello"))  # made up in the 4 s pause
    at = next(i for i, w in enumerate(hyp) if w[2] == "green")  # doubled at the 31 s cut
    hyp.insert(at + 1, (hyp[at][1], hyp[at][1] + 0.1, "green"))
    hyp.sort()
    s = score(meet, {"words": hyp, "wall": 1.0, "cpu": 1.0}, cached=False)
    assert s.skipped == 3 and s.longest_skip.startswith("3 words at 1")
    assert s.in_pauses == 1
    assert s.doubled_at_cuts == 1 and s.inserted_at_cuts == 1 and s.lost_at_cuts == 0
    assert s.wer == pytest.approx(5 / 30)

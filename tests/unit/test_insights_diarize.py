"""Diarization of real synthetic speech (espeak-ng voices, known line times) with the real
speaker model (CAM++, read without torch), no mocks."""

from __future__ import annotations

import itertools
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mina.errors import PermanentError
from mina.insights import embeddings, features, speaker_model
from mina.insights.diarize import assign_speakers, diarize, diarize_features, diarize_file
from mina.insights.schemas import DiarizationResult, SpeakerTurn
from mina.settings import get_settings
from mina.transcript import Segment, Word

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


def _make_meeting(workdir: Path, voices: list[str], count: int = len(LINES)) -> Meeting:
    """Lines in turn by `voices`, 0.5 s apart, trimmed so every line's time is exact."""
    pieces: list[np.ndarray] = []
    lines: list[tuple[float, float, str]] = []
    t = 0.0
    for i, text in enumerate(LINES[:count]):
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
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def model(data_dir: Path) -> embeddings.Embedder:
    """The real CAM++ weights (`python -m mina.insights.speaker_model fetch`, which
    scripts/test.sh runs), converted into this module's own data directory."""
    return speaker_model.load(get_settings().speaker_model, data_dir)


def test_the_onnx_graph_computes_what_the_numpy_port_does(
    model: embeddings.Embedder, data_dir: Path
) -> None:
    """The numpy port was checked against the PyTorch model (cosine 1.000, bench/README.md);
    the graph Mina runs must agree with it, for windows and for longer signals (the CAM
    layers pool 100-frame segments)."""
    reference = speaker_model.load_reference(get_settings().speaker_model, data_dir)
    rng = np.random.default_rng(3)
    for frames in (148, 480):
        feats = [rng.normal(size=(frames, 80)).astype(np.float32) for _ in range(3)]
        ours, theirs = model.embed(feats), reference.embed(feats)
        assert np.all(np.sum(ours * theirs, axis=1) > 0.9999)


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return _make_meeting(tmp_path_factory.mktemp("two"), ["high", "low"], count=10)


@pytest.fixture(scope="module")
def three_voices(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return _make_meeting(tmp_path_factory.mktemp("three"), ["high", "low", "mid"], count=12)


def _chunks(signal: np.ndarray, seconds: float = 30.0) -> list[np.ndarray]:
    step = int(seconds * SR) + 37  # as ffmpeg cuts: not a whole number of anything
    return [signal[i : i + step] for i in range(0, signal.size, step)]


@pytest.fixture(scope="module")
def three_features(three_voices: Meeting, model: embeddings.Embedder) -> features.Features:
    """Features per chunk, computed alone, stored and read back, as transcription keeps them."""
    return features.assemble([features.of_samples(c, model) for c in _chunks(three_voices.signal)])


def _line_embeddings(model: embeddings.Embedder, voice: str, tmp: Path) -> np.ndarray:
    tmp.mkdir()
    meeting = _make_meeting(tmp, [voice], count=3)
    rows = []
    for start, end, _ in meeting.lines:
        rows.append(embeddings.embed_signal(model, meeting.signal[int(start * SR) : int(end * SR)]))
    return np.stack(rows)


def test_the_same_voice_is_closer_than_another_voice(
    model: embeddings.Embedder, tmp_path: Path
) -> None:
    low = _line_embeddings(model, "low", tmp_path / "low")
    high = _line_embeddings(model, "high", tmp_path / "high")
    assert np.allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-4)
    same = [float(low[i] @ low[j]) for i, j in itertools.combinations(range(3), 2)]
    other = [float(a @ b) for a in low for b in high]
    assert min(same) > 0.7, same
    assert max(other) < 0.5, other


def test_two_voices_count_estimated_and_speech_assigned(
    two_voices: Meeting, model: embeddings.Embedder
) -> None:
    result = diarize(two_voices.signal, model)
    assert result.speakers == 2
    assert accuracy(two_voices, result) >= 0.9
    assert result.turns[0].speaker == "S1"
    assert {t.speaker for t in result.turns} == {"S1", "S2"}


def test_file_is_decoded_in_blocks_with_the_same_answer(
    two_voices: Meeting, model: embeddings.Embedder
) -> None:
    result = diarize_file(str(two_voices.path), model)
    assert result.speakers == 2
    assert accuracy(two_voices, result) >= 0.9


def test_three_voices_from_features_kept_per_chunk(
    three_voices: Meeting, three_features: features.Features, tmp_path: Path
) -> None:
    path = tmp_path / "000000.npz"
    features.save(three_features, path)
    kept = features.load(path)
    assert abs(kept.seconds - three_voices.signal.size / SR) < 1e-6
    result = diarize_features(kept)
    assert result.speakers == 3
    assert accuracy(three_voices, result) >= 0.9


def test_given_number_of_speakers_is_used(three_features: features.Features) -> None:
    assert diarize_features(three_features, num_speakers=2).speakers == 2
    assert diarize_features(three_features, num_speakers=1).speakers == 1
    assert diarize_features(three_features, max_speakers=2).speakers <= 2
    with pytest.raises(ValueError):
        diarize_features(three_features, num_speakers=0)


def test_features_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not numpy")
    with pytest.raises(ValueError):
        features.load(bad)
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(ValueError):
        features.load(tmp_path / "other.npz")


def test_an_empty_chunk_keeps_the_timeline(three_features: features.Features) -> None:
    nothing = features.empty(0.0)
    joined = features.assemble([nothing, three_features, features.empty(2.5)])
    assert joined.seconds == pytest.approx(three_features.seconds + 2.5)
    assert np.array_equal(joined.windows, three_features.windows)


def test_one_voice_is_one_speaker(tmp_path: Path, model: embeddings.Embedder) -> None:
    meeting = _make_meeting(tmp_path, ["low"], count=8)
    result = diarize(meeting.signal, model)
    assert result.speakers == 1
    assert accuracy(meeting, result) >= 0.9


def test_phone_band_audio_at_8_khz(two_voices: Meeting, model: embeddings.Embedder) -> None:
    from scipy.signal import resample_poly

    at_8k = resample_poly(two_voices.signal, 1, 2).astype(np.float32)
    result = diarize(at_8k, model, sr=8000)
    assert result.speakers == 2
    assert accuracy(two_voices, result) >= 0.9


def test_silence_and_tiny_signals_have_no_speakers(model: embeddings.Embedder) -> None:
    empty = DiarizationResult(speakers=0, turns=[])
    assert diarize(np.zeros(SR * 5, dtype=np.float32), model) == empty
    assert diarize(np.zeros(100, dtype=np.float32), model).speakers == 0
    assert diarize(np.zeros(0, dtype=np.float32), model).speakers == 0


def test_undecodable_file_is_a_permanent_error(tmp_path: Path, model: embeddings.Embedder) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    with pytest.raises(PermanentError):
        diarize_file(str(bad), model)


# ---------------------------------------------------------------------------- speaker model


def test_a_missing_or_wrong_model_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="is not a file"):
        speaker_model.load(str(tmp_path / "nowhere.pt"), tmp_path)
    other = tmp_path / "other.pt"
    other.write_bytes(b"PK not the checkpoint")
    with pytest.raises(PermanentError, match="sha256"):
        speaker_model.load(str(other), tmp_path)
    assert "speaker_model fetch" in speaker_model.INSTALL_HINT


def test_a_checkpoint_may_hold_only_a_state_dict(tmp_path: Path) -> None:
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="unexpected"):
        speaker_model.read_checkpoint(path)


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


def _words(*spans: tuple[float, float, str]) -> list[Word]:
    return [Word(start=a, end=b, text=t, probability=0.9) for a, b, t in spans]


def test_a_segment_spoken_by_two_is_split_at_the_word_where_the_speaker_changes() -> None:
    words = _words(
        (2.0, 2.4, " Can"), (2.4, 2.6, " you"), (2.6, 3.0, " check?"),
        (4.1, 4.5, " Sure,"), (4.5, 4.9, " I"), (4.9, 5.6, " will."),
    )  # fmt: skip
    segment = Segment(start=2.0, end=5.6, text="Can you check? Sure, I will.", words=words)
    parts = assign_speakers([segment], TURNS)
    assert [(p.speaker, p.text) for p in parts] == [
        ("S1", "Can you check?"),
        ("S2", "Sure, I will."),
    ]
    assert (parts[0].start, parts[0].end, parts[1].start, parts[1].end) == (2.0, 3.0, 4.1, 5.6)
    assert [w.speaker for p in parts for w in p.words or []] == ["S1"] * 3 + ["S2"] * 3


def test_words_outside_every_turn_take_their_segments_speaker() -> None:
    words = _words((12.0, 12.5, " Hello"), (12.5, 13.0, " there"))
    labelled = assign_speakers(
        [Segment(start=9.0, end=13.0, text="Hello there", words=words)], TURNS
    )
    assert len(labelled) == 1 and labelled[0].speaker == "S2"
    assert [w.speaker for w in labelled[0].words or []] == ["S2", "S2"]


def test_each_speaker_keeps_one_unit_voice(three_features: features.Features) -> None:
    found = diarize_features(three_features, num_speakers=3)
    assert set(found.voices) == {t.speaker for t in found.turns}
    vectors = np.array(list(found.voices.values()))
    assert vectors.shape == (3, embeddings.DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    sims = vectors @ vectors.T
    assert sims[np.triu_indices(3, 1)].max() < 0.9  # three different voices


def test_spectral_partition_follows_close_groups_not_the_largest_spread() -> None:
    """Two groups 0.7 apart along one direction and spread along another (a nuisance such as
    how much of a window is speech): spectral clustering cuts between the groups."""
    from mina.insights import clustering

    rng = np.random.default_rng(3)
    dim, n = 192, 120
    base, nuisance, voice = np.eye(dim)[0] * 4, np.eye(dim)[1], np.eye(dim)[2]
    truth = np.repeat([0, 1], n // 2)
    x = (
        base
        + rng.normal(0, 0.5, (n, 1)) * nuisance
        + np.where(truth[:, None] == 1, 0.35, -0.35) * voice
        + rng.normal(0, 0.01, (n, dim))
    )
    u = clustering.centred(clustering.unit_vectors(x).astype(np.float32))
    got = clustering.spectral(u, 2)
    assert got is not None
    agree = max(np.mean(got == truth), np.mean(got != truth))
    assert agree >= 0.95
    assert clustering.spectral(u, 2) is not None and np.array_equal(clustering.spectral(u, 2), got)


def test_a_split_around_introductions_follows_the_voices_not_the_largest_spread() -> None:
    """Two close voices in one cluster, a larger spread inside it (what is said) that the two
    voices hold in different shares: the units go to the nearer introduction's centroid, and
    no k-means step drifts to the larger spread."""
    from mina.insights import clustering

    rng = np.random.default_rng(5)
    dim, n = 192, 80
    base, nuisance, voice = np.eye(dim)[0] * 4, np.eye(dim)[1], np.eye(dim)[2]
    truth = np.repeat([0, 1], n // 2)
    up = np.where(truth == 0, rng.random(n) < 0.75, rng.random(n) < 0.25)
    x = (
        base
        + np.where(up, 0.8, -0.8)[:, None] * nuisance
        + np.where(truth[:, None] == 0, 0.3, -0.3) * voice
        + rng.normal(0, 0.05, (n, dim))
    )
    u = clustering.centred(clustering.unit_vectors(x).astype(np.float32))
    pins = {int(np.flatnonzero((truth == p) & up)[0]): p for p in (0, 1)}  # "I'm ..." alike
    got = clustering.split_named(u, np.zeros(n, dtype=np.int64), pins)
    assert all(got[unit] == person for unit, person in pins.items())
    assert np.mean(got == truth) >= 0.95


def test_people_who_introduced_themselves_are_a_floor_on_the_speakers(
    three_voices: Meeting, three_features: features.Features
) -> None:
    from mina.insights.names import Introduction

    def said(line: int, name: str) -> Introduction:
        start, end, _ = three_voices.lines[line]
        return Introduction(start, end, name)

    found = diarize_features(three_features)
    assert found.speakers == 3
    two = [said(0, "Ann"), said(1, "Bob")]
    assert diarize_features(three_features, introductions=two) == found  # as many voices
    # lines 0 and 3 are one voice: two people said who they are in it, so it holds two
    four = [said(0, "Ann"), said(1, "Bob"), said(2, "Cy"), said(3, "Dee")]
    split = diarize_features(three_features, introductions=four)
    assert split.speakers == 4
    first, fourth = (three_voices.lines[i] for i in (0, 3))
    speaker_at = {t.speaker for t in split.turns if t.start <= first[0] + 1 < t.end}
    assert speaker_at and speaker_at.isdisjoint(
        t.speaker for t in split.turns if t.start <= fourth[0] + 1 < t.end
    )
    assert diarize_features(three_features, introductions=four, max_speakers=3).speakers == 3
    assert diarize_features(three_features, num_speakers=2, introductions=four).speakers == 2
    # five names in three voices, no two in one voice to split: partitioned into five
    five = [*four, said(4, "Eve")]
    assert diarize_features(three_features, introductions=five).speakers >= 4


def test_a_voice_holding_two_introduced_names_is_split_whatever_the_count(
    three_voices: Meeting, three_features: features.Features
) -> None:
    from mina.insights.names import Introduction

    def said(line: int, name: str) -> Introduction:
        start, end, _ = three_voices.lines[line]
        return Introduction(start, end, name)

    found = diarize_features(three_features)
    assert found.speakers == 3
    # lines 0 and 3 are one voice: two names said in it, fewer names than voices
    split = diarize_features(three_features, introductions=[said(0, "Ann"), said(3, "Dee")])
    assert split.speakers == 4  # no two other clusters alike enough to be one voice
    first, fourth = (three_voices.lines[i] for i in (0, 3))
    at_first = {t.speaker for t in split.turns if t.start <= first[0] + 1 < t.end}
    assert at_first and at_first.isdisjoint(
        t.speaker for t in split.turns if t.start <= fourth[0] + 1 < t.end
    )
    assert diarize_features(three_features, num_speakers=3, introductions=[]) == diarize_features(
        three_features, num_speakers=3, introductions=[said(0, "Ann"), said(3, "Dee")]
    )  # a count given is kept


def test_after_a_split_around_names_the_most_alike_clusters_merge_never_two_named() -> None:
    from mina.insights import clustering

    rng = np.random.default_rng(7)
    dim = 192
    axes = np.eye(dim)
    # units: voice 0 split by the tree in two clusters (0 and 1), voices 1 and 2 named (2, 3)
    voice = np.array([0] * 10 + [0] * 10 + [1] * 10 + [2] * 10)
    unit_labels = np.repeat([0, 1, 2, 3], 10).astype(np.int64)
    x = axes[voice + 1] * 1.0 + axes[0] * 0.5 + rng.normal(0, 0.05, (40, dim))
    x = clustering.unit_vectors(x).astype(np.float32)
    units = np.arange(40, dtype=np.int64)
    named = {20: 0, 30: 1}  # Ann said her name in cluster 2, Bob in cluster 3
    merged = clustering.merge_closest(x, units, unit_labels, named, most=6)
    assert merged.max() == 2 and merged[0] == merged[10]  # the two pieces of one voice
    # the named clusters are never merged, even when they are the most alike
    twins = x.copy()
    twins[30:] = x[20:30]
    merged = clustering.merge_closest(twins, units, unit_labels, named, most=6)
    assert merged[20] != merged[30] and merged[0] == merged[10]
    # nothing alike enough: unchanged, unless there are more clusters than allowed
    apart = clustering.unit_vectors(axes[np.arange(40) // 10 + 1] + rng.normal(0, 0.05, (40, dim)))
    same = clustering.merge_closest(apart.astype(np.float32), units, unit_labels, named, 6)
    assert np.array_equal(same, unit_labels)
    fewer = clustering.merge_closest(apart.astype(np.float32), units, unit_labels, named, 3)
    assert fewer.max() == 2


def test_people_introduced_are_counted_once_per_name_as_heard() -> None:
    from mina.insights.names import introduced_people, introductions

    said = [
        "Hi everyone, I'm Sofia.",
        "Hello, this is Omar.",
        "Thanks Omar, I'm going to share my screen.",
        "Sophia here again, I'm Sophia.",
        "It's Monday, I'm sure we can start.",
        "This is Acme's offer; it's Berlin after all.",  # not people saying who they are
    ]
    segments = [Segment(start=i, end=i + 1, text=t) for i, t in enumerate(said)]
    assert introduced_people(segments) == 2
    assert introduced_people([]) == 0
    words = [
        Word(start=10.0, end=10.4, text=" Hello,"),
        Word(start=10.4, end=10.6, text=" I'm"),
        Word(start=10.6, end=11.0, text=" Dana."),
        Word(start=11.2, end=12.0, text=" Okay."),
    ]
    seg = Segment(start=10.0, end=12.0, text="Hello, I'm Dana. Okay.", words=words)
    (intro,) = introductions([seg])
    assert (intro.start, intro.end, intro.name) == (10.0, 11.3, "Dana")


def test_whitening_against_one_voices_scatter_brings_out_the_voices() -> None:
    """Two close voices and a larger spread that changes from window to window inside one
    stretch of speech (what is said): whitened against the differences of neighbouring
    windows of a stretch, the voices are what is left to cluster; without it the tree and
    its merges follow the spread."""
    from mina.insights import clustering

    rng = np.random.default_rng(11)
    dim, stretches, per = 192, 16, 8
    base, nuisance, voice = np.eye(dim)[0] * 4, np.eye(dim)[1], np.eye(dim)[2]
    stretch = np.repeat(np.arange(stretches), per).astype(np.int64)
    truth = stretch % 2  # stretches alternate between the two voices
    n = stretch.size
    x = (
        base
        + rng.normal(0, 0.8, (n, 1)) * nuisance
        + np.where(truth[:, None] == 1, 0.2, -0.2) * voice
        + rng.normal(0, 0.05, (n, dim))
    )
    x = clustering.unit_vectors(x).astype(np.float32)
    units = np.arange(n, dtype=np.int64)

    def agree(labels: np.ndarray) -> float:
        return float(max(np.mean(labels == truth), np.mean(labels != truth)))

    white = clustering.within_whitened(x, stretch)
    assert white.shape == x.shape and np.allclose(np.linalg.norm(white, axis=1), 1.0, atol=1e-4)
    assert agree(clustering.cluster(x, units, 2, 2)) < 0.8  # the spread wins
    assert agree(clustering.cluster(white, units, 2, 2)) >= 0.95
    # no two windows in one stretch: nothing to estimate one voice's scatter from
    alone = np.arange(n, dtype=np.int64)
    assert np.allclose(clustering.within_whitened(x, alone), clustering.centred(x))


def test_clusters_less_alike_than_unrelated_still_merge_down_to_the_count() -> None:
    """Whitened embeddings can put two clusters on opposite sides (rho < 0): merging down to
    the count asked for still merges them, never a cluster with itself (that never ended)."""
    from mina.insights import clustering

    rng = np.random.default_rng(13)
    dim, n = 192, 40
    side = np.repeat([1.0, -1.0], n // 2)[:, None]
    x = clustering.unit_vectors(side * np.eye(dim)[0] + rng.normal(0, 0.05, (n, dim)))
    units = np.arange(n, dtype=np.int64)
    assert clustering.rho(x.astype(np.float32), np.repeat([0, 1], n // 2), 2)[0, 1] < 0
    labels = clustering.cluster(x.astype(np.float32), units, None, max_speakers=1)
    assert np.array_equal(labels, np.zeros(n, dtype=np.int64))

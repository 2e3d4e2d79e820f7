"""Speakers: how well the speaker model tells voices apart, and how well diarization does.

    .venv/bin/python bench/speakers.py [--quick] [--baseline REV]

Prints, in one run:

1. Verification (the port of CAM++): for every pair of utterances, the cosine of their
   embeddings; the equal-error rate over same/different-voice pairs and both distributions.
   Real speech from bench/corpus.py when it is there (many speakers), and espeak-ng voices
   (one line = one utterance), with a per-pair table (en-gb+f2 with en-us+m3 included).
2. Diarization of meetings: espeak-ng meetings of 1-4 voices (mina.synth), the 2-voice one
   again band-limited to a phone line (300-3400 Hz, 8 kHz), and real-speaker meetings from
   bench/corpus.py when it is there. Per meeting: speakers found against the true count,
   with `num_speakers` given, and attribution by words (each line's words spread evenly over
   its time, the share given to the right speaker under the best one-to-one mapping).
   The same meetings through the diarizer of `--baseline` (default: the last commit before
   the speaker model, MFCC + Ward + BIC), loaded from git into a temporary package; a
   baseline with the speaker model clusters the same features, with and without the count.
3. Time: features per 30 s chunk (what transcription adds per chunk) and clustering a
   10-minute meeting's features (what diarize does after the barrier).

    .venv/bin/python bench/speakers.py --calibrate

instead calibrates known speakers (docs/memory.md): meetings of real voices (each meeting its
own utterances: no audio is heard twice) and the espeak-ng meetings are diarized as Mina does,
each speaker's stored voice (`DiarizationResult.voices`) is given the true voice that spoke
most of its time, and every pair of voices from two different meetings is scored by cosine.
Prints FAR (different voices accepted) and FRR (same voice refused) at thresholds, and the
smallest threshold with FAR <= 1 % (`mina.memory.voiceprints.THRESHOLD` comes from it).

Features are cached under $MINA_BENCH_CACHE/speakers (by audio hash): the second run is fast.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mina.insights import diarize as diar
from mina.insights import embeddings, speaker_model
from mina.insights import features as feat
from mina.insights.schemas import DiarizationResult
from mina.settings import get_settings
from mina.synth import Line, Voice, default_meeting_lines, make_meeting

SR = 16000
CACHE = Path(os.environ.get("MINA_BENCH_CACHE", "~/.cache/mina-bench")).expanduser() / "speakers"
BASELINE = "1599b10"  # MFCC/pitch features, Ward, BIC merging, Gaussian resegmentation
VOICES = ["en-gb+f2", "en-us+m3", "en-us+m1", "en-us+f3", "en-us+f4", "en-gb-x-rp+f2"]
MEETINGS = [
    ("1", ["en-us+m3"]),
    ("2a", ["en-gb+f2", "en-us+m3"]),
    ("2b", ["en-us+f3", "en-us+m1"]),
    ("2c", ["en-us+m3", "en-us+m1"]),
    ("3a", ["en-gb+f2", "en-us+m3", "en-us+f4"]),
    ("3b", ["en-us+f3", "en-us+m1", "en-gb-x-rp+f2"]),
    ("4a", ["en-gb+f2", "en-us+m3", "en-us+f3", "en-us+m1"]),
]


@dataclass
class Truth:
    speaker: str
    start: float
    end: float
    words: int


def decode(path: Path, phone: bool = False) -> np.ndarray:
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path)]
    if phone:  # a phone line: 300-3400 Hz at 8 kHz, back to 16 kHz
        cmd += ["-af", "highpass=f=300,lowpass=f=3400,aresample=8000,aresample=16000"]
    cmd += ["-f", "f32le", "-ac", "1", "-ar", str(SR), "-"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.float32)


def cached_features(signal: np.ndarray, model: embeddings.CamPlusPlus) -> tuple[Any, float]:
    """Features per 30 s chunk (as transcription computes them) and seconds per chunk."""
    digest = hashlib.sha256(signal.tobytes())
    digest.update(f"{feat.WINDOW}/{feat.HOP}/{feat.VAD_MIN_SILENCE_MS}".encode())
    key = digest.hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{key}.npz"
    timing = CACHE / f"{key}.seconds"
    if path.exists() and timing.exists():
        return feat.load(path), float(timing.read_text())
    step = 30 * SR
    parts, spent = [], 0.0
    for i in range(0, signal.size, step):
        started = time.perf_counter()
        parts.append(feat.of_samples(signal[i : i + step], model))
        spent += time.perf_counter() - started
    joined = feat.assemble(parts)
    feat.save(joined, path)
    per_chunk = spent / len(parts)
    timing.write_text(str(per_chunk))
    return joined, per_chunk


def attribution(truth: list[Truth], result: DiarizationResult) -> float:
    """Share of words given to the right speaker, under the best one-to-one label mapping."""
    names = sorted({t.speaker for t in truth})
    hyp = sorted({t.speaker for t in result.turns}) or ["none"]
    counts = np.zeros((len(names), len(hyp)))
    starts = np.array([t.start for t in result.turns])
    total = 0
    for line in truth:
        for k in range(line.words):
            at = line.start + (k + 0.5) * (line.end - line.start) / line.words
            total += 1
            i = int(np.searchsorted(starts, at, side="right")) - 1
            if i >= 0 and result.turns[i].start <= at <= result.turns[i].end + 0.3:
                who = result.turns[i].speaker
            elif len(starts):
                who = result.turns[int(np.abs(starts - at).argmin())].speaker
            else:
                continue
            counts[names.index(line.speaker), hyp.index(who)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / max(1, total))


def eer(same: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Equal-error rate and the cosine threshold where misses and false accepts meet."""
    best = (np.inf, 0.0, 0.0)
    for t in np.unique(np.concatenate([same, other])):
        miss, false = float(np.mean(same < t)), float(np.mean(other >= t))
        if abs(miss - false) < best[0]:
            best = (abs(miss - false), (miss + false) / 2, float(t))
    return best[1], best[2]


def first_minutes(f: Any, seconds: float) -> Any:
    keep = f.windows[:, 1] <= seconds
    speech = f.speech[f.speech[:, 1] <= seconds]
    return feat.Features(speech, f.windows[keep], f.embeddings[keep], seconds)


def verification(name: str, vectors: np.ndarray, speakers: list[str]) -> None:
    sims = vectors @ vectors.T
    iu = np.triu_indices(len(speakers), 1)
    same_mask = np.array([speakers[i] == speakers[j] for i, j in zip(*iu, strict=True)])
    values = sims[iu]
    same, other = values[same_mask], values[~same_mask]
    rate, thr = eer(same, other)
    pct = [5, 25, 50, 75, 95]
    print(f"\n{name}: {len(set(speakers))} voices, {len(speakers)} utterances")
    print(f"  EER {100 * rate:.1f} % (at cosine {thr:.2f})")
    print(f"  same voice      cos p{pct}: {np.round(np.percentile(same, pct), 2).tolist()}")
    print(f"  different voice cos p{pct}: {np.round(np.percentile(other, pct), 2).tolist()}")


def espeak_lines(workdir: Path, voices: list[str], count: int) -> tuple[np.ndarray, list[str]]:
    lines = [ln.text for ln in default_meeting_lines(1.5)][:count]
    rows, who = [], []
    model = MODEL
    for voice in voices:
        for i, text in enumerate(lines):
            wav = workdir / f"{voice}-{i}.wav"
            if not wav.exists():
                make_meeting([Line("x", text)], wav, {"x": Voice(voice)})
            rows.append(embeddings.embed_signal(model, decode(wav)))
            who.append(voice)
    return np.stack(rows), who


def espeak_meeting(workdir: Path, voices: list[str], minutes: float) -> tuple[Path, list[Truth]]:
    people = [f"P{i}" for i in range(len(voices))]
    lines = [
        Line(people[i % len(people)], ln.text)
        for i, ln in enumerate(default_meeting_lines(minutes))
    ]
    path = workdir / f"meeting-{'_'.join(voices)}-{minutes}.wav"
    script = make_meeting(lines, path, dict(zip(people, [Voice(v) for v in voices], strict=True)))
    truth = [Truth(ln.speaker, ln.start, ln.end, len(ln.text.split())) for ln in script.lines]
    return path, truth


def load_baseline(rev: str) -> Any:
    """The diarizer of `rev` (its diarize, features, clustering, speakers, schemas) as a
    temporary package, or None when git cannot show it."""
    root = Path(tempfile.mkdtemp(prefix="mina-baseline-"))
    pkg = root / "baseline_insights"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("diarize", "features", "clustering", "speakers"):
        try:
            text = subprocess.run(
                ["git", "show", f"{rev}:mina/insights/{name}.py"],
                capture_output=True, check=True, text=True, cwd=Path(__file__).parent,
            ).stdout  # fmt: skip
        except subprocess.CalledProcessError:
            return None
        text = text.replace(
            "from mina.insights import clustering", "from baseline_insights import clustering"
        )
        text = text.replace(
            "from mina.insights import features as feat",
            "from baseline_insights import features as feat",
        )
        text = text.replace(
            "from mina.insights.speakers import", "from baseline_insights.speakers import"
        )
        (pkg / f"{name}.py").write_text(text)
    sys.path.insert(0, str(root))
    return importlib.import_module("baseline_insights.diarize")


MODEL: embeddings.CamPlusPlus
BIG_VOICES = ("allison", "june", "carlo", "ru-voice")  # ~15 min each in bench/corpus.py
SMALL_VOICES = ("sonnet", "austen", "cards")  # under a minute each: impostors only
FAR_TARGET = 0.01


def owner_of(label: str, result: DiarizationResult, truth: list[Truth]) -> str:
    """The true voice that spoke most of `label`'s time."""
    spoken: dict[str, float] = {}
    for turn in result.turns:
        if turn.speaker != label:
            continue
        for t in truth:
            overlap = min(turn.end, t.end) - max(turn.start, t.start)
            if overlap > 0:
                spoken[t.speaker] = spoken.get(t.speaker, 0.0) + overlap
    return max(spoken, key=lambda k: spoken[k]) if spoken else "?"


def calibration_meetings(
    work: Path, quick: bool
) -> list[tuple[str, np.ndarray, list[Truth], bool]]:
    """Meetings of 2-3 real voices, each from utterances no other meeting uses, the same again
    band-limited to a phone line (another channel), and the espeak-ng meetings (their voices
    read different lines in each). Each: name, signal, truth, phone band."""
    import random

    corpus = importlib.import_module("bench.corpus")
    pool = corpus.utterances(("asterisk", "sonnet", "austen", "cards", *corpus.OTHER_LANGUAGES))
    rng = random.Random(7)
    decks = {v: [u for u in pool if u.speaker == v] for v in BIG_VOICES}
    for deck in decks.values():
        rng.shuffle(deck)
    count = 4 if quick else 10
    small = [[u for u in pool if u.speaker == v] for v in SMALL_VOICES]
    cases: list[tuple[str, np.ndarray, list[Truth], bool]] = []
    for i in range(count):
        voices = [BIG_VOICES[(i + j) % 4] for j in range(2 + i % 2)]
        utts: list[Any] = []
        for v in voices:  # about 50 s of each voice, taken off its deck
            took = 0.0
            while took < 50.0 and decks[v]:
                utts.append(decks[v].pop())
                took += utts[-1].seconds
        if i < len(small):  # a voice heard in one meeting only
            utts.extend(small[i])
        rng.shuffle(utts)
        m = corpus.build_meeting(utts, seed=i)
        truth = [Truth(t.speaker, t.start, t.end, len(t.text.split())) for t in m.turns]
        name = f"real {'+'.join(sorted({t.speaker for t in truth}))}"
        cases.append((name, decode(m.wav), truth, False))
        cases.append((f"{name}, phone", decode(m.wav, phone=True), truth, True))
    for name, voices in MEETINGS[: 4 if quick else None]:
        path, truth = espeak_meeting(work, voices, 1.0 if quick else 2.0)
        named = {f"P{i}": v for i, v in enumerate(voices)}
        truth = [Truth(named[t.speaker], t.start, t.end, t.words) for t in truth]
        cases.append((f"espeak {name}", decode(path), truth, False))
    return cases


@dataclass
class Stored:
    meeting: int  # the audio it came from (a phone-band copy shares its original's)
    phone: bool
    voice: str  # the true voice that spoke most of the label's time
    centroid: np.ndarray  # what Mina stores (DiarizationResult.voices)
    longest: np.ndarray  # baseline: one embedding of the label's longest turn


def _pairs(stored: list[Stored], which: str, phone: str) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of same-voice and different-voice pairs from two different recordings; phone:
    "none" (both clean) or "one" (clean against phone band)."""
    same, other = [], []
    for a, b in itertools.combinations(stored, 2):
        if a.meeting == b.meeting or (a.phone + b.phone) != (0 if phone == "none" else 1):
            continue
        value = float(getattr(a, which) @ getattr(b, which))
        (same if a.voice == b.voice else other).append(value)
    return np.array(same), np.array(other)


def _threshold(other: np.ndarray) -> float:
    grid = np.round(np.arange(0.0, 1.01, 0.01), 2)
    return next(float(t) for t in grid if np.mean(other >= t) <= FAR_TARGET)


def calibrate(work: Path, quick: bool) -> None:
    """FAR/FRR of voice against voice across meetings, and the threshold for FAR <= 1 %."""
    stored: list[Stored] = []
    print("\nmeeting                                          speakers found (true)")
    cases = calibration_meetings(work, quick)
    source = 0
    for name, signal, truth, phone in cases:
        source += not phone
        kept, _ = cached_features(signal, MODEL)
        found = diar.diarize_features(kept)  # as Mina does: number of speakers not given
        for label, vector in found.voices.items():
            turn = max(
                (t for t in found.turns if t.speaker == label), key=lambda t: t.end - t.start
            )
            piece = signal[int(turn.start * SR) : int(turn.end * SR)]
            longest = embeddings.embed_signal(MODEL, piece)
            voice = owner_of(label, found, truth)
            stored.append(Stored(source, phone, voice, np.array(vector, np.float32), longest))
        print(f"  {name[:46]:46s} {found.speakers:3d} ({len({t.speaker for t in truth})})")
    s, o = _pairs(stored, "centroid", "none")
    rate, at = eer(s, o)
    print(f"\n{len(stored)} stored voices; {s.size} same-voice, {o.size} different-voice pairs")
    print("(same recording conditions; phone-band copies only in the cross-channel lines)")
    print(f"EER {100 * rate:.1f} % at cosine {at:.2f}")
    print("threshold   FAR (different accepted)   FRR (same refused)")
    for t in np.arange(0.30, 0.95, 0.05):
        far, frr = 100 * np.mean(o >= t), 100 * np.mean(s < t)
        print(f"  {t:.2f}      {far:6.2f} %                 {frr:6.2f} %")
    chosen = _threshold(o)
    frr = float(np.mean(s < chosen))
    print(
        f"chosen: {chosen:.2f} (smallest with FAR <= {100 * FAR_TARGET:.0f} %): "
        f"FAR {100 * np.mean(o >= chosen):.2f} %, FRR {100 * frr:.2f} %; "
        f"highest different-voice cosine {o.max():.3f}, lowest same-voice {s.min():.3f}"
    )
    worst = sorted(
        (
            (float(a.centroid @ b.centroid), f"{a.voice} / {b.voice} ({cases_of(cases, a)} / "
             f"{cases_of(cases, b)})")
            for a, b in itertools.combinations(stored, 2)
            if a.meeting != b.meeting and a.voice != b.voice and not (a.phone or b.phone)
        ),
        reverse=True,
    )  # fmt: skip
    real = [v for v in stored if cases_of(cases, v).startswith("real") and not v.phone]
    top = max(float(a.centroid @ b.centroid) for a, b in itertools.combinations(real, 2)
              if a.meeting != b.meeting and a.voice != b.voice)  # fmt: skip
    print(f"highest different-voice cosine between real voices: {top:.3f}")
    print("most similar different voices (true voice by most of the label's time):")
    for value, pair in worst[:6]:
        print(f"  {value:.3f}  {pair}")

    bs, bo = _pairs(stored, "longest", "none")
    base_rate, _ = eer(bs, bo)
    base_at = _threshold(bo)
    base_frr = float(np.mean(bs < base_at))
    print(
        f"\nbaseline, one embedding of the speaker's longest turn: EER {100 * base_rate:.1f} %, "
        f"FAR <= 1 % at {base_at:.2f} with FRR {100 * base_frr:.2f} %"
    )
    cs, co = _pairs(stored, "centroid", "one")
    ls, lo = _pairs(stored, "longest", "one")
    print(
        f"clean against phone band ({cs.size} same, {co.size} different pairs): centroid at "
        f"{chosen:.2f}: FAR {100 * np.mean(co >= chosen):.2f} %, "
        f"FRR {100 * np.mean(cs < chosen):.2f} %"
        f"; longest turn at {base_at:.2f}: FAR {100 * np.mean(lo >= base_at):.2f} %, "
        f"FRR {100 * np.mean(ls < base_at):.2f} %"
    )
    print(f"EER ratio centroid/longest turn = {rate / max(base_rate, 1e-9):.3f}")


def cases_of(cases: list[tuple[str, np.ndarray, list[Truth], bool]], st: Stored) -> str:
    clean = [c for c in cases if not c[3]]
    return clean[st.meeting - 1][0] + (", phone" if st.phone else "")


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer lines and meetings")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline")
    parser.add_argument(
        "--sweep", type=float, nargs="*", default=[], help="also: one fixed merge threshold"
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="known speakers: FAR/FRR and the threshold"
    )
    args = parser.parse_args()
    settings = get_settings()
    MODEL = speaker_model.load(settings.speaker_model, settings.data_dir)
    work = CACHE / "audio"
    work.mkdir(parents=True, exist_ok=True)
    if args.calibrate:
        calibrate(work, args.quick)
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"bench/speakers.py at {commit}; baseline {args.baseline}")

    # 1. verification
    try:
        corpus = importlib.import_module("bench.corpus")
        sources = ("asterisk", "sonnet", "austen", "cards", *getattr(corpus, "OTHER_LANGUAGES", {}))
        by_speaker: dict[str, list[Any]] = {}
        for u in corpus.utterances(sources):
            by_speaker.setdefault(u.speaker, []).append(u)
        utts = [u for group in by_speaker.values() for u in group[:: max(1, len(group) // 60)]]
        vectors = np.stack([embeddings.embed_signal(MODEL, decode(u.wav)) for u in utts])
        verification("real speech (bench/corpus.py)", vectors, [u.speaker for u in utts])
    except (ImportError, AttributeError, OSError, subprocess.CalledProcessError) as exc:
        corpus = None
        print(f"\nreal speech: bench/corpus.py not available ({exc}); espeak-ng only")
    vectors, who = espeak_lines(work, VOICES, 3 if args.quick else 6)
    verification("espeak-ng voices, one line each", vectors, who)
    print("  pairs (mean cosine between their lines; same voice on the diagonal):")
    for a, b in itertools.combinations_with_replacement(VOICES, 2):
        sa = vectors[[w == a for w in who]]
        sb = vectors[[w == b for w in who]]
        s = sa @ sb.T
        s = s[np.triu_indices(len(s), 1)] if a == b else s.ravel()
        print(f"    {a:14s} {b:14s} {s.mean():.2f}")

    # 2. meetings
    base = load_baseline(args.baseline)
    minutes = 1.0 if args.quick else 2.0
    cases: list[tuple[str, np.ndarray, list[Truth]]] = []
    for name, voices in MEETINGS[: 4 if args.quick else None]:
        path, truth = espeak_meeting(work, voices, minutes)
        cases.append((f"{name} espeak {'+'.join(voices)}", decode(path), truth))
        if name == "2b":
            cases.append((f"{name} same, phone band", decode(path, phone=True), truth))
    if corpus is not None:
        seeds = (0,) if args.quick else (0, 1)
        for n, seed in itertools.product((2, 3, 4), seeds):
            m = corpus.real_meeting(n, max(minutes, 1.5), seed)
            truth = [Truth(t.speaker, t.start, t.end, len(t.text.split())) for t in m.turns]
            cases.append((f"real {n} speakers, seed {seed}", decode(m.wav), truth))
            if n == 2:
                phone = decode(m.wav, phone=True)
                cases.append((f"real 2 speakers, seed {seed}, phone band", phone, truth))
    print(
        "\nmeeting                                  true found  words | hint  words | "
        "baseline found words | hint words"
    )
    per_chunk: list[float] = []
    right, base_right = 0, 0
    ours: list[float] = []
    theirs: list[float] = []
    hinted_all: list[float] = []
    base_hinted: list[float] = []
    for name, signal, truth in cases:
        true = len({t.speaker for t in truth})
        kept, seconds = cached_features(signal, MODEL)
        per_chunk.append(seconds)
        found = diar.diarize_features(kept)
        hinted = diar.diarize_features(kept, num_speakers=true)
        right += found.speakers == true
        ours.append(attribution(truth, found))
        hinted_all.append(attribution(truth, hinted))
        old = ""
        if base is not None:
            if hasattr(base, "diarize_features"):  # a speaker-model baseline: the same features
                was = base.diarize_features(kept)
                was_hinted = base.diarize_features(kept, num_speakers=true)
                base_hinted.append(attribution(truth, was_hinted))
            else:
                was = base.diarize(signal)
            theirs.append(attribution(truth, was))
            base_right += was.speakers == true
            old = f"{was.speakers:>5d}  {100 * theirs[-1]:5.1f}%"
            old += f" | {100 * base_hinted[-1]:5.1f}%" if base_hinted else ""
        print(
            f"{name[:40]:40s} {true:4d} {found.speakers:5d} "
            f"{100 * attribution(truth, found):5.1f}% | "
            f"{hinted.speakers:4d} {100 * attribution(truth, hinted):5.1f}% | {old}"
        )
    print(f"speaker count right on {right}/{len(cases)} meetings (baseline {base_right})")
    if args.sweep:
        print("\ncalibration: one fixed merge threshold instead of the rule")
        kept_all = [(cached_features(s, MODEL)[0], t) for _, s, t in cases]
        for rho in args.sweep:
            found_all = [(diar.diarize_features(f, threshold=rho), t) for f, t in kept_all]
            ok = sum(r.speakers == len({x.speaker for x in t}) for r, t in found_all)
            mean = np.mean([attribution(t, r) for r, t in found_all])
            print(f"  rho >= {rho:.2f}: {ok}/{len(cases)} right, attribution {100 * mean:.1f}%")

    # 3. time
    joined = feat.assemble([cached_features(s, MODEL)[0] for _, s, _ in cases])
    ten = first_minutes(feat.assemble([joined] * int(np.ceil(600 / joined.seconds))), 600.0)
    started = time.perf_counter()
    diar.diarize_features(ten)
    after = time.perf_counter() - started
    started = time.perf_counter()
    diar.diarize_features(ten, num_speakers=4)
    after_hinted = time.perf_counter() - started
    print(f"\nfeatures per 30 s chunk: {np.mean(per_chunk):.2f} s (in transcription, in parallel)")
    print(
        f"diarize after the barrier, {ten.seconds / 60:.0f} min of features: {after:.2f} s; "
        f"with the number of speakers given (spectral): {after_hinted:.2f} s"
    )
    if theirs:
        print(
            f"mean word attribution {100 * np.mean(ours):.1f}%, "
            f"baseline {100 * np.mean(theirs):.1f}%"
        )
        print(f"ratio={np.mean(ours) / max(np.mean(theirs), 1e-9):.3f}")
    if base_hinted:
        print(
            f"with the number of speakers given: mean word attribution "
            f"{100 * np.mean(hinted_all):.1f}%, baseline {100 * np.mean(base_hinted):.1f}%, "
            f"ratio={np.mean(hinted_all) / max(np.mean(base_hinted), 1e-9):.3f}"
        )


if __name__ == "__main__":
    main()

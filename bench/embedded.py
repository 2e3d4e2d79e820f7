"""Embedded path: `mina process` on a generated 10-minute two-voice meeting vs plain faster-whisper.

Measures, in one run on this machine:
  baseline   one faster-whisper call on the whole file (same model, same decoding options,
             every core), the plain library's time;
  mina(1)    `mina process FILE --json` with one transcription worker of one core;
  mina(2)    the same with two workers of one core each (one model, `num_workers=2`): the
             default on a 2-core machine;
  stages     for each mina run, from its ledger (the run's SQLite file): start-up (process start
             to the first chunk received), transcription (first chunk received to
             `transcription_complete`), post-processing (to the reveal) and exit;
  library    the ceiling of 1 -> 2 worker scaling on this machine: plain faster-whisper over the
             same 30 s pieces with one worker of one core, then two (one model,
             `num_workers=2`, two threads), model already loaded; and two processes with a
             model each (what mina's `num_workers` choice was measured against).
Each mina configuration runs `--repeat` times (default 2), alternating, each on a fresh data
directory; the figures use each one's fastest run (this machine's run-to-run noise is about
+-5 %, more than the differences measured), and every run is printed.
Prints wall times, word error rates, `ratio=<mina(2)/baseline>` (target <= 1.0), the speedup
mina(1)/mina(2) (target >= 1.6), the transcription stage's own speedup and the library's.
`--before DIR` also runs mina(2) on another tree's mina (PYTHONPATH=DIR, e.g. a git worktree of
the base commit) in the same run, alternating, and prints after/before; `--quick` skips mina(1)
and the scaling figures.
Each mina run gets a fresh data directory made from a prepared one (database migrated, Whisper
base joined, speaker model converted: what a data directory holds after its first run), so a
run pays what every `mina process` pays, not the one-time set-up (the baseline's model is loaded
before its clock starts too); `--fresh` gives each run an empty data directory instead (a first
run ever: +1-3 s). CPU seconds (the process and its children) are printed beside wall times:
on this shared machine they move less than wall times.
Usage: .venv/bin/python bench/embedded.py [--minutes 10] [--repeat 2] [--before DIR] [--quick]
       [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mina import audio  # noqa: E402
from mina.synth import default_meeting_lines, make_meeting  # noqa: E402
from tests.fixtures.audio import wer  # noqa: E402


def _model_dir() -> str:
    """The model `mina process` uses (MINA_WHISPER_MODEL, joined once for base): the same."""
    from mina.providers.whisper_models import model_path
    from mina.settings import Settings

    return model_path(Settings())


def baseline(path: Path, beam: int) -> tuple[float, str]:
    from faster_whisper import WhisperModel

    model = WhisperModel(
        _model_dir(),
        device="cpu",
        compute_type="int8",
        cpu_threads=os.cpu_count() or 1,
    )
    started, cpu = time.monotonic(), time.process_time()
    segments, _ = model.transcribe(
        str(path), language="en", beam_size=beam, condition_on_previous_text=False
    )
    text = " ".join(s.text for s in segments)
    global baseline_cpu
    baseline_cpu = time.process_time() - cpu
    return time.monotonic() - started, text


baseline_cpu = 0.0


def prepare(template: Path) -> Path:
    """A data directory as its first run leaves it: migrated, models joined and converted."""
    from mina.insights import speaker_model
    from mina.providers.whisper_models import model_path
    from mina.settings import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mina"), "db", "upgrade"],
        env={**env, "MINA_DATA_DIR": str(template)},
        capture_output=True,
        check=True,
    )
    settings = Settings(data_dir=template)
    model_path(settings)
    speaker_model.load(settings.speaker_model, template)
    return template


def _copy_data(template: Path, data: Path) -> None:
    """The template's files: models hard-linked (read only), the database copied."""
    shutil.copytree(template / "models", data / "models", copy_function=os.link)
    for name in os.listdir(template):
        if name != "models" and (template / name).is_file():
            shutil.copy2(template / name, data / name)


def library_scaling(pieces: list[Path], beam: int) -> dict[int, float]:
    """Plain faster-whisper over the pieces with 1 and 2 workers of one core each."""
    from faster_whisper import WhisperModel

    out: dict[int, float] = {}
    for workers in (1, 2):
        model = WhisperModel(
            _model_dir(),
            device="cpu",
            compute_type="int8",
            cpu_threads=1,
            num_workers=workers,
        )

        def one(piece: Path, model: Any = model) -> str:
            segments, _ = model.transcribe(
                str(piece), language="en", beam_size=beam, condition_on_previous_text=False
            )
            return " ".join(s.text for s in segments)

        started = time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, pieces))
        out[workers] = time.monotonic() - started
        del model
    return out


_process_model: Any = None
_process_beam = 5


def _load_in_process(beam: int) -> None:
    global _process_model, _process_beam
    from faster_whisper import WhisperModel

    _process_model = WhisperModel(
        _model_dir(),
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
    )
    _process_beam = beam


def _transcribe_in_process(piece: Path | None) -> str:
    if piece is None:
        return ""
    segments, _ = _process_model.transcribe(
        str(piece),
        language="en",
        beam_size=_process_beam,
        condition_on_previous_text=False,
    )
    return " ".join(s.text for s in segments)


def process_scaling(pieces: list[Path], beam: int) -> float:
    """The other way to use two cores: two processes with a model each (loaded before timing)."""
    with ProcessPoolExecutor(2, initializer=_load_in_process, initargs=(beam,)) as pool:
        list(pool.map(_transcribe_in_process, [None] * 4))
        started = time.monotonic()
        list(pool.map(_transcribe_in_process, pieces))
        return time.monotonic() - started


def stages(data: Path, started: float, ended: float) -> dict[str, float]:
    """Seconds of each stage of a `mina process` run, from the ledger in its SQLite file."""
    with sqlite3.connect(data / "mina.db") as db:
        rows = db.execute("SELECT type, MIN(created_at) FROM event GROUP BY type").fetchall()
    first = {kind: _epoch(at) for kind, at in rows}
    received = first["chunk_received"]
    complete = first["transcription_complete"]
    revealed = first.get("post_transcription_reveal") or first["post_transcription_failed"]
    return {
        "start-up": received - started,
        "transcription": complete - received,
        "post-processing": revealed - complete,
        "exit": ended - revealed,
    }


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def mina_process(
    path: Path,
    threads: int,
    work: Path,
    run: int = 0,
    code: str | None = None,
    template: Path | None = None,
) -> tuple[float, dict[str, object]]:
    data = work / f"data-{threads}-{run}{'-before' if code else ''}"
    if template is not None:
        _copy_data(template, data)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINA_")},
        "MINA_DATA_DIR": str(data),
        "MINA_WORKER_THREADS": str(threads),
        "MINA_WHISPER_THREADS": "1",
    }
    if code:  # another tree's mina (e.g. a `git worktree` of the commit before a change)
        env["PYTHONPATH"] = code
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, wall = time.monotonic(), time.time()
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mina"), "process", str(path), "--json"],
        env=env,
        capture_output=True,
        check=True,
    )
    seconds = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = json.loads(out.stdout)
    doc["stages"] = stages(data, wall, wall + seconds)
    doc["cpu"] = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return seconds, doc


def stage_line(doc: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:5.2f}s" for k, v in doc["stages"].items())


def transcript_text(doc: dict[str, object]) -> str:
    segments = doc["transcript"]["segments"]  # type: ignore[index]
    return " ".join(s["text"] for s in segments)  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mina configuration")
    parser.add_argument(
        "--before",
        default="",
        help="also mina(2) of this tree (e.g. a git worktree of the base commit), alternating",
    )
    parser.add_argument(
        "--quick", action="store_true", help="baseline and mina(2) only (no scaling figures)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="an empty data directory per run (a first run)"
    )
    args = parser.parse_args()
    from mina.settings import Settings

    beam = Settings().whisper_beam_size
    with tempfile.TemporaryDirectory(prefix="mina-bench-") as tmp:
        work = Path(tmp)
        path = work / "meeting.ogg"
        script = make_meeting(default_meeting_lines(args.minutes), path)
        print(f"audio: {script.duration:.1f}s two-voice espeak meeting, {os.cpu_count()} cores")
        template = None if args.fresh else prepare(work / "template")
        base_s, base_text = baseline(path, beam)
        print(
            f"baseline  faster-whisper whole file: {base_s:7.2f}s  cpu {baseline_cpu:6.2f}s  "
            f"RTF {base_s / script.duration:.3f}  WER {wer(script.text, base_text):.3f}"
        )
        runs: dict[int, list[tuple[float, dict[str, Any]]]] = {0: [], 1: [], 2: []}
        for run in range(args.repeat):
            for threads in (0, 2) if args.quick else (0, 1, 2):
                if threads == 0 and not args.before:
                    continue
                code = args.before if threads == 0 else None
                seconds, doc = mina_process(path, threads or 2, work, run, code, template)
                runs[threads].append((seconds, doc))
                label = f"before({2})" if threads == 0 else f"mina({threads})  "
                print(
                    f"{label} mina process, {threads or 2} worker(s), run {run + 1}: "
                    f"{seconds:7.2f}s  cpu {doc['cpu']:6.2f}s  "
                    f"WER {wer(script.text, transcript_text(doc)):.3f}  "
                    f"({doc['processing_status']})  {stage_line(doc)}"
                )
        two_s, two = min(runs[2], key=lambda r: r[0])
        if args.before:
            old_s, old = min(runs[0], key=lambda r: r[0])
            print(f"before(2) best of {args.repeat}: {old_s:7.2f}s  ({args.before})")
            print(f"stages    before(2): {stage_line(old)}")
            print(f"ratio_before={old_s / base_s:.3f}  after/before={two_s / old_s:.3f}")
            print(
                f"cpu: before {old['cpu']:.2f}s  after {two['cpu']:.2f}s  "
                f"after/before={two['cpu'] / old['cpu']:.3f}  "
                f"before/baseline={old['cpu'] / baseline_cpu:.3f}  "
                f"after/baseline={two['cpu'] / baseline_cpu:.3f}"
            )
        if args.quick:
            print(f"mina(2)   best of {args.repeat}: {two_s:7.2f}s")
            print(f"stages    mina(2): {stage_line(two)}")
            print(f"ratio={two_s / base_s:.3f}  cpu_ratio={two['cpu'] / baseline_cpu:.3f}")
            return
        one_s, one = min(runs[1], key=lambda r: r[0])
        print(f"mina(1)   best of {args.repeat}: {one_s:7.2f}s")
        print(f"mina(2)   best of {args.repeat}: {two_s:7.2f}s")
        print(f"stages    mina(1): {stage_line(one)}")
        print(f"stages    mina(2): {stage_line(two)}")
        pieces = sorted(audio.segment(path, Settings().chunk_seconds, work / "pieces"))
        lib = library_scaling(pieces, beam)
        procs = process_scaling(pieces, beam)
        print(
            f"library   faster-whisper on the {len(pieces)} pieces: 1 worker {lib[1]:.2f}s, "
            f"2 workers of one model {lib[2]:.2f}s, 2 processes of a model each {procs:.2f}s"
        )
        t1, t2 = one["stages"]["transcription"], two["stages"]["transcription"]
        print(
            f"scaling 1->2 workers: library {lib[1] / lib[2]:.2f}x (the ceiling on this machine), "
            f"mina's transcription stage {t1 / t2:.2f}x"
        )
        print(f"speedup 1->2 workers, end to end: {one_s / two_s:.2f}x (target >= 1.6)")
        print(f"ratio={two_s / base_s:.3f}")


if __name__ == "__main__":
    main()

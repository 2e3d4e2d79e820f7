"""Recovery after a SIGKILLed worker, with default settings: finish → reveal, heartbeats on and off.

The real stack: a throwaway PostgreSQL database, the Redis broker, `dramatiq workers.actors`
worker processes and a `python -m scheduler` process, all with the default lease, heartbeat and
scheduler settings. Only the providers are simulated, so that a chunk or a task is in flight
long enough to be killed: the transcriber takes `--chunk-seconds` per chunk, summary
`--task-seconds`. Two scenarios, each run with heartbeats off (`MINA_HEARTBEAT_SECONDS=0`: the
600 s lease and the 30 s scheduler interval that were the defaults before) as the baseline, then
with the defaults (heartbeat every 5 s, timeout 20 s):

- chunk: three chunks uploaded, `finish`, the worker SIGKILLed while it transcribes one and
  restarted at once (as a supervisor would);
- task: the same once summary runs.

Printed per run: finish → reveal, kill → the work claimed again; last line
`ratio=<heartbeat finish → reveal / baseline's>` of the chunk scenario (medians).

    .venv/bin/python bench/recovery.py [--runs 3] [--redis-db 12] [--no-baseline]

About 13 minutes with the baseline (its chunk waits out the 600 s lease), 2 without.
The Redis database given is flushed at start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import admin, configure, scalar, wait  # noqa: E402


@dataclass(frozen=True)
class Run:
    scenario: str
    mode: str
    finish_to_reveal: float
    kill_to_reclaim: float


def start(cmd: list[str], log: Path, env: dict[str, str], ready: str) -> subprocess.Popen:
    """Start a process group logging to `log` (appended); wait for `ready` to appear once more."""
    before = log.read_text(errors="replace").count(ready) if log.exists() else 0
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while log.read_text(errors="replace").count(ready) <= before:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{cmd} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait()


def worker(log: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1", "--threads", "2"]
    return start(cmd, log, env, "is ready for action")


def one_run(scenario: str, mode: str, env: dict[str, str], chunks: list[Path], logs: Path) -> Run:
    from sqlalchemy import func, select

    from mina import conversations
    from mina.db import session_scope
    from mina.ingest import accept_chunk
    from mina.models import Chunk, Event, PostTask
    from mina.pipeline.finish import finish_conversation as finish
    from mina.settings import get_settings
    from mina.storage import build_storage
    from workers.dispatch import DramatiqDispatcher

    settings = get_settings()
    storage, dispatcher = build_storage(settings), DramatiqDispatcher()
    log = logs / f"{scenario}-{mode}.log"
    proc = worker(log, env)
    try:
        with session_scope() as s:
            conv, _ = conversations.create(s, f"recovery {scenario} {mode}")
            cid = conv.id
        for index, path in enumerate(chunks):
            with path.open("rb") as fh:
                accept_chunk(
                    cid, index, fh, storage=storage, dispatcher=dispatcher, settings=settings
                )
        if scenario == "task":  # the chunks are in; the kill hits summary, not a chunk
            done = select(func.count()).where(
                Chunk.conversation_id == cid, Chunk.status == "transcribed"
            )
            wait(lambda: scalar(done) == len(chunks), "chunks transcribed")
        finished = time.monotonic()
        finish(cid, len(chunks), dispatcher)
        if scenario == "chunk":
            held = select(Chunk.id).where(
                Chunk.conversation_id == cid, Chunk.status == "processing"
            )
            victim = wait(lambda: scalar(held.limit(1)), "a chunk in flight")
            again = select(Chunk.attempts).where(Chunk.id == victim)
        else:
            running = select(PostTask.status).where(
                PostTask.conversation_id == cid, PostTask.name == "summary"
            )
            wait(lambda: scalar(running) == "running", "summary running")
            again = running.with_only_columns(PostTask.attempts)
        time.sleep(1.0)  # well inside the work: it would take seconds more
        kill(proc)
        killed = time.monotonic()
        proc = worker(log, env)  # the supervisor's restart
        wait(lambda: (scalar(again) or 0) >= 2, "the work claimed again", timeout=900)
        reclaimed = time.monotonic()
        outcome = select(Event.id).where(
            Event.conversation_id == cid,
            Event.type.in_(("post_transcription_reveal", "post_transcription_failed")),
        )
        wait(lambda: scalar(outcome), "reveal", timeout=900)
        revealed = time.monotonic()
        with session_scope() as s:
            status = s.scalar(select(Event.type).where(Event.id == scalar(outcome)))
        if status != "post_transcription_reveal":
            raise SystemExit(f"conversation {cid}: {status}")
    finally:
        kill(proc, signal.SIGTERM)
    run = Run(scenario, mode, revealed - finished, reclaimed - killed)
    print(
        f"{scenario:5} {mode:9} finish->reveal={run.finish_to_reveal:7.1f}s "
        f"kill->reclaimed={run.kill_to_reclaim:7.1f}s",
        flush=True,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario with heartbeats")
    parser.add_argument("--redis-db", type=int, default=12, help="flushed at start")
    parser.add_argument("--chunk-seconds", type=float, default=8.0, help="simulated per chunk")
    parser.add_argument("--task-seconds", type=float, default=10.0, help="simulated summary")
    parser.add_argument("--no-baseline", action="store_true", help="skip heartbeats off")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mina-bench-recovery-"))
    dbname = configure(
        workdir,
        args.redis_db,
        {
            "MINA_TRANSCRIBER": "simulated",
            "MINA_SIM_LATENCY_SECONDS": str(args.chunk_seconds),
            "MINA_LANGUAGE_PROVIDER": "simulated",
            "MINA_SIM_TASK_LATENCY": f"summary={args.task_seconds}",
        },
    )
    admin(f"CREATE DATABASE {dbname}")
    runs: list[Run] = []
    scheduler: subprocess.Popen | None = None
    try:
        import redis

        from mina import audio, db
        from mina.settings import get_settings
        from mina.synth import default_meeting_lines, make_meeting
        from mina_cli import migrate

        url = get_settings().resolved_database_url
        migrate.upgrade(url)
        db.configure(url)
        redis.Redis.from_url(os.environ["MINA_BROKER_URL"]).flushdb()
        source = workdir / "meeting.ogg"
        make_meeting(default_meeting_lines(0.5), source)
        chunks = audio.split(source, 10.0, workdir / "chunks", ext="ogg")
        modes = [("heartbeat", {}, args.runs)]
        if not args.no_baseline:
            modes.insert(0, ("baseline", {"MINA_HEARTBEAT_SECONDS": "0"}, 1))
        for mode, env, count in modes:
            log = workdir / f"scheduler-{mode}.log"
            scheduler = start([sys.executable, "-m", "scheduler"], log, env, "leader: ")
            for scenario in ("chunk", "task"):
                for _ in range(count):
                    runs.append(one_run(scenario, mode, env, chunks, workdir))
            kill(scheduler, signal.SIGTERM)
            scheduler = None
    finally:
        if scheduler is not None:
            kill(scheduler)
        from mina import db as mina_db

        mina_db.get_engine().dispose()
        admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)

    def med(scenario: str, mode: str, key: str) -> float:
        got = [getattr(r, key) for r in runs if r.scenario == scenario and r.mode == mode]
        return statistics.median(got) if got else float("nan")

    print("medians (seconds)          finish->reveal  kill->reclaimed")
    for mode in ("baseline", "heartbeat"):
        for scenario in ("chunk", "task"):
            print(
                f"  {scenario:5} {mode:9}          {med(scenario, mode, 'finish_to_reveal'):7.1f}"
                f"         {med(scenario, mode, 'kill_to_reclaim'):7.1f}"
            )
    for scenario in ("chunk", "task"):
        ratio = med(scenario, "heartbeat", "finish_to_reveal") / med(
            scenario, "baseline", "finish_to_reveal"
        )
        print(f"ratio_{scenario}={ratio:.3f}")
    ratio = med("chunk", "heartbeat", "finish_to_reveal") / med(
        "chunk", "baseline", "finish_to_reveal"
    )
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()

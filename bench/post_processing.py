"""Post-processing in parallel: finish → reveal wall time against the critical path.

The seed's figures as simulated latencies (refinement 3 s, analytics 1 s, tasks 3 s, summary
4 s) on the real stack: a throwaway PostgreSQL database migrated like the tests', the Redis
broker, `dramatiq workers.actors` worker processes started as subprocesses, a real two-voice
espeak meeting (so merge and diarize do real work) and the simulated transcriber. Each run
uploads the chunks, waits until they are transcribed, then calls `finish` and waits for the
reveal. Printed per run and as medians: finish → reveal wall time, the sequential sum of the
task durations, the critical path (max of merge+diarize+analytics and each language task),
a second parallel series whose workers poll idle queues every 100 ms instead of Dramatiq's
1000 ms (`dramatiq_worker_timeout`, the main overhead), the same with one worker thread (the
sequential baseline), and as the last line `ratio=<parallel wall / critical path>` of the main
series (target ≤ 1.10).

    .venv/bin/python bench/post_processing.py [--runs 5] [--threads 8] [--redis-db 15]
        [--poll-ms 1000] [--fast-poll-ms 100 (0: skip)] [--no-baseline] [--minutes 1]

About 3 minutes. The Redis database given is flushed at start.
"""

from __future__ import annotations

import argparse
import os
import shutil
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

LATENCIES = "refinement=3,analytics=1,tasks=3,summary=4"
CHAIN = ("merge", "diarize", "analytics")
LANGUAGE = ("refinement", "tasks", "summary")
FIRST_WAVE = ("merge", *LANGUAGE)


@dataclass(frozen=True)
class Run:
    wall: float  # finish → reveal, seconds
    durations: dict[str, float]  # per task, seconds
    to_last_start: float  # finish → the last of the first wave starts (queue pickup)
    after_last_task: float  # the last task finishes → the reveal

    @property
    def sequential(self) -> float:
        return sum(self.durations.values())

    @property
    def critical(self) -> float:
        chain = sum(self.durations[n] for n in CHAIN)
        return max(chain, *(self.durations[n] for n in LANGUAGE))


def start_workers(
    threads: int, log_path: Path, extra_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1"]
    cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **extra_env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "is ready for action" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def stop_workers(proc: subprocess.Popen[bytes]) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def one_run(chunks: list[Path]) -> Run:
    from sqlalchemy import func, select

    from mina import conversations
    from mina.db import session_scope, utcnow
    from mina.ingest import accept_chunk
    from mina.models import Chunk, Event, PostTask
    from mina.pipeline.finish import finish_conversation as finish
    from mina.settings import get_settings
    from mina.storage import build_storage
    from workers.dispatch import DramatiqDispatcher

    settings = get_settings()
    storage, dispatcher = build_storage(settings), DramatiqDispatcher()
    with session_scope() as s:
        conv, _ = conversations.create(s, "bench")
        cid = conv.id
    for index, path in enumerate(chunks):
        with path.open("rb") as fh:
            accept_chunk(cid, index, fh, storage=storage, dispatcher=dispatcher, settings=settings)
    transcribed = (
        select(func.count())
        .select_from(Chunk)
        .where(Chunk.conversation_id == cid, Chunk.status == "transcribed")
    )
    wait(lambda: scalar(transcribed) == len(chunks), "chunks transcribed", poll=0.02)
    started = utcnow()
    finish(cid, len(chunks), dispatcher)
    reveal_q = select(Event.created_at).where(
        Event.conversation_id == cid,
        Event.type.in_(("post_transcription_reveal", "post_transcription_failed")),
    )
    revealed_at = wait(lambda: scalar(reveal_q), "reveal", poll=0.02)
    with session_scope() as s:
        tasks = s.scalars(select(PostTask).where(PostTask.conversation_id == cid)).all()
        failed = [t.name for t in tasks if t.status != "done"]
        durations = {t.name: (t.duration_ms or 0) / 1000 for t in tasks}
        wave = [t.started_at for t in tasks if t.name in FIRST_WAVE and t.started_at]
        last = max(t.finished_at for t in tasks if t.finished_at)
    if failed:
        raise SystemExit(f"conversation {cid}: tasks failed: {failed}")
    return Run(
        (revealed_at - started).total_seconds(),
        durations,
        (max(wave) - started).total_seconds(),
        (revealed_at - last).total_seconds(),
    )


def series(
    label: str, threads: int, poll_ms: int, runs: int, chunks: list[Path], logs: Path
) -> list[Run]:
    # dramatiq's idle consumers poll Redis with a backoff capped by `dramatiq_worker_timeout`
    # (1000 ms by default): the pickup latency of a message sent to an idle queue.
    env = {"dramatiq_worker_timeout": str(poll_ms)}
    proc = start_workers(threads, logs / f"worker-{label}.log", env)
    try:
        one_run(chunks)  # warm-up: imports, first connections, first diarization
        out = []
        for n in range(runs):
            run = one_run(chunks)
            out.append(run)
            tasks = " ".join(f"{k}={v:.2f}" for k, v in sorted(run.durations.items()))
            print(
                f"{label} run {n + 1}: wall={run.wall:.2f}s sum={run.sequential:.2f}s "
                f"critical={run.critical:.2f}s to_last_start={run.to_last_start:.2f}s "
                f"after_last_task={run.after_last_task:.2f}s  [{tasks}]",
                flush=True,
            )
        return out
    finally:
        stop_workers(proc)


def median(runs: list[Run], key: str) -> float:
    return statistics.median(getattr(r, key) for r in runs)


def report(title: str, runs: list[Run]) -> None:
    wall, crit = median(runs, "wall"), median(runs, "critical")
    print(f"{title}, medians of {len(runs)} runs:")
    print(f"  finish -> reveal wall time   {wall:6.2f} s  (max {max(r.wall for r in runs):.2f})")
    print(f"  sequential sum of tasks      {median(runs, 'sequential'):6.2f} s")
    print(f"  critical path                {crit:6.2f} s")
    print(f"  overhead over critical path  {wall - crit:6.2f} s")
    print(f"    finish -> first wave runs  {median(runs, 'to_last_start'):6.2f} s")
    print(f"    last task -> reveal        {median(runs, 'after_last_task'):6.2f} s")
    print(f"  wall / critical path         {wall / crit:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8, help="worker threads, parallel mode")
    parser.add_argument("--redis-db", type=int, default=15, help="flushed at start")
    parser.add_argument("--minutes", type=float, default=1.0, help="length of the meeting")
    parser.add_argument(
        "--poll-ms",
        type=int,
        default=int(os.environ.get("dramatiq_worker_timeout", "100")),  # noqa: SIM112 - its name
        help="dramatiq_worker_timeout of the workers (default: as `mina worker` runs them)",
    )
    parser.add_argument(
        "--fast-poll-ms", type=int, default=100, help="a second parallel series (0: skip)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the 1-thread series")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mina-bench-post-"))
    dbname = configure(
        workdir,
        args.redis_db,
        {
            "MINA_TRANSCRIBER": "simulated",
            "MINA_SIM_LATENCY_SECONDS": "0.05",
            "MINA_LANGUAGE_PROVIDER": "simulated",
            "MINA_SIM_TASK_LATENCY": LATENCIES,
        },
    )
    admin(f"CREATE DATABASE {dbname}")
    fast: list[Run] = []
    sequential: list[Run] = []
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
        script = make_meeting(default_meeting_lines(args.minutes), source)
        chunks = audio.split(source, 30.0, workdir / "chunks", ext="ogg")
        print(
            f"meeting {script.duration:.1f}s in {len(chunks)} chunks; latencies {LATENCIES}; "
            f"{args.runs} runs per series after a warm-up",
            flush=True,
        )
        parallel = series("parallel", args.threads, args.poll_ms, args.runs, chunks, workdir)
        if args.fast_poll_ms:
            label = f"parallel-poll{args.fast_poll_ms}"
            fast = series(label, args.threads, args.fast_poll_ms, args.runs, chunks, workdir)
        if not args.no_baseline:
            sequential = series("sequential", 1, args.poll_ms, args.runs, chunks, workdir)
    finally:
        from mina import db as mina_db

        mina_db.get_engine().dispose()
        admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)

    report(f"parallel ({args.threads} threads, idle poll {args.poll_ms} ms)", parallel)
    if fast:
        report(f"parallel ({args.threads} threads, idle poll {args.fast_poll_ms} ms)", fast)
    wall = median(parallel, "wall")
    if fast:
        print(
            f"ratio_poll{args.fast_poll_ms}={median(fast, 'wall') / median(fast, 'critical'):.3f}"
        )
    if sequential:
        seq_wall = median(sequential, "wall")
        print("sequential baseline (1 worker thread), medians:")
        print(f"  finish -> reveal wall time   {seq_wall:6.2f} s")
        print(f"  sequential sum of tasks      {median(sequential, 'sequential'):6.2f} s")
        print(f"speedup={seq_wall / wall:.2f} (baseline wall / parallel wall)")
    print(f"ratio={wall / median(parallel, 'critical'):.3f}")


if __name__ == "__main__":
    main()

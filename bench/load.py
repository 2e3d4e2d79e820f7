"""Load: many participants uploading at the real cadence, time-compressed, against the full stack.

The stack is what a deployment runs: the web process under gunicorn with the Procfile's command
(bench/ingest.py), `--workers` x `mina worker` (1 process x 2 threads each, the defaults) and one
`python -m scheduler` (= `mina scheduler`), started with bench/recovery.py's `start`, on a
throwaway PostgreSQL database and a Redis database; only the providers are simulated
(transcriber `--sim-latency` s per call, language tasks at their simulated defaults). Merge,
diarization and analytics are real.

Every participant has its own conversation and keep-alive connection, and uploads `--chunks`
chunks of a generated espeak-ng meeting (`--chunk-seconds` of speech each), one every
`--period` s from a random phase (the 30 s cadence compressed), open loop: latency is counted
from the scheduled send time, so a request that waited for its connection counts the wait. After
its last chunk is acknowledged it calls `finish`. Two phases in the same run:

  baseline   one participant alone, `--baseline-runs` times one after the other;
  load       `--participants` (50) at once.

Printed per phase, p50 and p99: upload acknowledgement, chunk transcribed after its upload was
acknowledged (the chunk row's `finished_at`), finish → reveal (`revealed_at` after the finish
was sent); then errors (a non-2xx answer or no answer, a failed chunk, a conversation not
revealed, or revealed other than `ready`) and each figure's ratio to the baseline. Last line:
`ratio=<finish → reveal p99 under load / baseline's>`.

    .venv/bin/python bench/load.py [--participants 50] [--chunks 6] [--period 1]
        [--workers 2] [--redis-db 11]

About 2-4 minutes on a 2-core machine. The Redis database is claimed like a test run claims one
(tests/conftest.py), flushed at start and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import Client, free_port, multipart, start_server  # noqa: E402
from bench.recovery import kill, start  # noqa: E402
from bench.services import admin, configure, pct  # noqa: E402


def now() -> datetime:
    """Naive UTC, the clock the rows are written with (mina.db.utcnow), on this machine."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Participant:
    cid: str
    token: str
    acks: list[float] = field(default_factory=list)  # seconds from the scheduled send
    acked_at: dict[str, datetime] = field(default_factory=dict)  # chunk id → when acknowledged
    finish_sent: datetime | None = None
    errors: list[str] = field(default_factory=list)


def create(port: int) -> Participant:
    status, body = Client(port).call(
        ("POST", "/api/conversations", b'{"title": "load"}', {"Content-Type": "application/json"})
    )
    if status != 201:
        raise SystemExit(f"create: {status} {body[:200]!r}")
    out = json.loads(body)
    return Participant(out["id"], out["token"])


def record(p: Participant, port: int, chunks: list[bytes], start_at: float, period: float) -> None:
    """Upload every chunk at start_at + k * period (open loop), then finish."""
    conn = Client(port)
    auth = {"Authorization": f"Bearer {p.token}"}
    for index, data in enumerate(chunks):
        body, ctype = multipart(index, data)
        due = start_at + index * period
        while (left := due - time.perf_counter()) > 0:
            time.sleep(left)
        try:
            status, answer = conn.call(
                (
                    "POST",
                    f"/api/conversations/{p.cid}/chunks",
                    body,
                    {**auth, "Content-Type": ctype},
                )
            )
        except OSError as exc:
            status, answer = 0, repr(exc).encode()
        p.acks.append(time.perf_counter() - due)
        if status in (200, 202):
            p.acked_at[json.loads(answer)["id"]] = now()
        else:
            p.errors.append(f"upload {index}: {status} {answer[:160]!r}")
    p.finish_sent = now()
    finish = json.dumps({"expected_chunks": len(chunks)}).encode()
    try:
        status, answer = conn.call(
            (
                "POST",
                f"/api/conversations/{p.cid}/finish",
                finish,
                {**auth, "Content-Type": "application/json"},
            )
        )
    except OSError as exc:
        status, answer = 0, repr(exc).encode()
    if status != 202:
        p.errors.append(f"finish: {status} {answer[:160]!r}")


@dataclass
class Phase:
    name: str
    ack: list[float] = field(default_factory=list)
    transcribed: list[float] = field(default_factory=list)
    reveal: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    chunks: int = 0
    wall: float = 0.0
    rate: float = 0.0  # chunks transcribed per second, first upload to last transcription


def run_phase(
    name: str,
    port: int,
    participants: int,
    chunks: list[bytes],
    period: float,
    rng: random.Random,
    timeout: float,
) -> Phase:
    from sqlalchemy import select

    from mina.db import session_scope
    from mina.models import Chunk, Conversation

    people = [create(port) for _ in range(participants)]
    began = time.perf_counter()
    start_at = began + 1.0
    threads = [
        threading.Thread(
            target=record,
            args=(p, port, chunks, start_at + rng.uniform(0.0, period), period),
            daemon=True,
        )
        for p in people
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [p.cid for p in people]
    terminal = ("ready", "partial", "failed")

    def settled() -> bool:
        with session_scope() as s:
            done = s.scalars(
                select(Conversation.id).where(
                    Conversation.id.in_(ids), Conversation.processing_status.in_(terminal)
                )
            ).all()
        return len(done) == len(ids)

    deadline = time.monotonic() + timeout
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.25)
    out = Phase(name, wall=time.perf_counter() - began)
    with session_scope() as s:
        rows = {c.id: c for c in s.scalars(select(Conversation).where(Conversation.id.in_(ids)))}
        chunk_rows = list(s.scalars(select(Chunk).where(Chunk.conversation_id.in_(ids))))
        s.expunge_all()
    done = [c for c in chunk_rows if c.status == "transcribed" and c.finished_at]
    if done:
        span = max(c.finished_at for c in done) - min(c.created_at for c in chunk_rows)
        out.rate = len(done) / max(span.total_seconds(), 1e-3)
    for p in people:
        out.ack += p.acks
        out.errors += [f"{p.cid[:8]} {e}" for e in p.errors]
        conv = rows[p.cid]
        if conv.processing_status not in terminal:
            out.errors.append(f"{p.cid[:8]} not revealed within {timeout:.0f}s")
        elif conv.processing_status != "ready":
            out.errors.append(f"{p.cid[:8]} revealed {conv.processing_status}: {conv.error}")
        if conv.revealed_at is not None and p.finish_sent is not None:
            out.reveal.append((conv.revealed_at - p.finish_sent).total_seconds())
        for c in (c for c in chunk_rows if c.conversation_id == p.cid):
            out.chunks += 1
            if c.status == "failed":
                out.errors.append(f"{p.cid[:8]} chunk {c.index} failed: {c.error}")
            elif c.status == "transcribed" and c.finished_at and c.id in p.acked_at:
                out.transcribed.append((c.finished_at - p.acked_at[c.id]).total_seconds())
    return out


def show(phase: Phase, base: Phase | None) -> dict[str, float]:
    ratios: dict[str, float] = {}
    print(f"{phase.name}: {phase.chunks} chunks stored, {len(phase.errors)} error(s), "
          f"{phase.wall:.1f} s")  # fmt: skip
    for label, values, unit in (
        ("upload ack", phase.ack, 1000.0),
        ("transcribed after upload", phase.transcribed, 1.0),
        ("finish -> reveal", phase.reveal, 1.0),
    ):
        if not values:
            print(f"  {label:26s} no samples")
            continue
        suffix = "ms" if unit == 1000.0 else "s"
        line = (
            f"  {label:26s} n={len(values):4d}  p50={pct(values, 0.5) * unit:8.2f} {suffix}"
            f"  p99={pct(values, 0.99) * unit:8.2f} {suffix}"
            f"  max={max(values) * unit:8.2f} {suffix}"
        )
        if base is not None:
            before = dict(
                zip(("upload ack", "transcribed after upload", "finish -> reveal"),
                    (base.ack, base.transcribed, base.reveal), strict=True)
            )[label]  # fmt: skip
            if before:
                r50 = pct(values, 0.5) / pct(before, 0.5)
                r99 = pct(values, 0.99) / pct(before, 0.99)
                ratios[label] = r99
                line += f"  ratio vs baseline p50={r50:.2f}x p99={r99:.2f}x"
        print(line, flush=True)
    print(f"  workers' throughput        {phase.rate:.2f} chunks/s, first upload to last "
          f"transcription (~{phase.rate * 30:.0f} participants at one chunk per 30 s)")  # fmt: skip
    for e in phase.errors[:10]:
        print(f"  error: {e}")
    return ratios


def claim_redis(db: int) -> None:
    """Take the Redis database the way a test run does, so none flushes it under us."""
    import redis

    claims = redis.Redis(host="127.0.0.1", port=6379, db=0)
    key = f"mina:test-db:{db}"
    if not claims.set(key, str(os.getpid()), nx=True, ex=3600):
        raise SystemExit(f"Redis db {db} is claimed ({key}); pick another --redis-db")


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=6, help="per participant")
    parser.add_argument("--chunk-seconds", type=float, default=5.0, help="speech per chunk")
    parser.add_argument(
        "--period", type=float, default=1.0, help="s between a participant's chunks"
    )
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="`mina worker` processes")
    parser.add_argument("--sim-latency", type=float, default=1.0, help="transcriber s per call")
    parser.add_argument("--timeout", type=float, default=240.0, help="s to wait for the reveals")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    claim_redis(args.redis_db)
    work = Path(tempfile.mkdtemp(prefix="mina-bench-load-"))
    dbname = configure(
        work,
        args.redis_db,
        {
            "MINA_TRANSCRIBER": "simulated",
            "MINA_LANGUAGE_PROVIDER": "simulated",
            "MINA_SIM_LATENCY_SECONDS": str(args.sim_latency),
            "MINA_SIM_SEED": str(args.seed),
        },
    )
    admin(f"CREATE DATABASE {dbname}")
    procs: list[subprocess.Popen[bytes]] = []
    server: subprocess.Popen[bytes] | None = None
    mina = str(ROOT / ".venv" / "bin" / "mina")
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
        source = work / "meeting.ogg"
        make_meeting(default_meeting_lines(args.chunks * args.chunk_seconds / 60 + 0.1), source)
        paths = audio.split(source, args.chunk_seconds, work / "chunks", ext="ogg")
        chunks = [p.read_bytes() for p in paths[: args.chunks]]
        if len(chunks) < args.chunks:
            raise SystemExit(f"the meeting gave {len(chunks)} chunks, not {args.chunks}")

        env = dict(os.environ)
        port = free_port()
        server = start_server(env, port, work / "gunicorn.log")
        for n in range(args.workers):
            procs.append(start([mina, "worker"], work / f"w{n}.log", {}, "is ready for action"))
        scheduler = [sys.executable, "-m", "scheduler"]  # = `mina scheduler`, with its logs
        procs.append(start(scheduler, work / "scheduler.log", {}, "leader: "))
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; gunicorn -w 1 --threads 64, "
            f"{args.workers} x `mina worker` (1 process x 2 threads), 1 scheduler; simulated "
            f"transcriber {args.sim_latency:g} s/call; {args.chunks} chunks of "
            f"{args.chunk_seconds:g} s speech ({len(chunks[0])} bytes) per participant, one every "
            f"{args.period:g} s",
            flush=True,
        )
        rng = random.Random(args.seed)
        run_phase("warm-up", port, 1, chunks[:1], args.period, rng, args.timeout)
        base = Phase("baseline: 1 participant")
        for _ in range(args.baseline_runs):
            one = run_phase(base.name, port, 1, chunks, args.period, rng, args.timeout)
            base.ack += one.ack
            base.transcribed += one.transcribed
            base.reveal += one.reveal
            base.errors += one.errors
            base.chunks += one.chunks
            base.wall += one.wall
            base.rate += one.rate / args.baseline_runs  # the runs' mean
        show(base, None)
        load = run_phase(
            f"load: {args.participants} participants at once",
            port,
            args.participants,
            chunks,
            args.period,
            rng,
            args.timeout,
        )
        ratios = show(load, base)
        print(f"errors={len(base.errors) + len(load.errors)}")
        print(f"ratio={ratios.get('finish -> reveal', float('nan')):.2f}")
    finally:
        for proc in procs:
            kill(proc, signal.SIGTERM)
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        import redis

        from mina import db as mina_db

        mina_db.get_engine().dispose()
        redis.Redis.from_url(os.environ["MINA_BROKER_URL"]).flushdb()
        redis.Redis(host="127.0.0.1", port=6379, db=0).delete(f"mina:test-db:{args.redis_db}")
        admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

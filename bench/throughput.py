"""Orchestration overhead: chunks per second through upload → transcribe → barrier, against the
same number of no-op Dramatiq messages on the same Redis and worker, in the same run.

The stack is the real one: the Procfile's web process (gunicorn, one worker of 64 threads, via
bench/ingest.py's helpers), `dramatiq bench.noop_actor` (Mina's actors plus a no-op one) as one
worker process, a throwaway PostgreSQL database, a Redis database, the simulated transcriber
with no latency (`MINA_SIM_LATENCY_SECONDS=0`), 30 s Opus chunks, many small conversations.

  baseline   N no-op messages sent by `--clients` threads of this process, until the worker
             has done them all (`broker.join`); `--baseline-runs` times (5), the median kept;
  pipeline   `--conversations` conversations x `--chunks` chunks (N in all) uploaded over HTTP by
             `--clients` keep-alive connections, until every chunk is transcribed by the worker;
             then the worker is stopped and every conversation finished over HTTP (its barrier
             runs inside the finish request: all chunks are terminal), until every barrier has
             passed. Stopping the worker first keeps post-processing, which the barrier queues,
             out of the figures.

Prints both rates, the overhead per chunk beyond the baseline in ms (pipeline seconds - baseline
seconds, over N); per chunk and per no-op message, the SQL statements, commits and Redis calls
of the web and worker processes with the time they waited on them (counted inside those
processes by bench/probe_site/sitecustomize.py, put on their PYTHONPATH); and, with `--profile`, a
second pipeline run under py-spy (web and worker processes, 250 Hz, idle threads left out):
where their CPU time goes, by library and by function. Last line: `ratio=<baseline rate /
pipeline rate>`.

    .venv/bin/python bench/throughput.py [--conversations 100] [--chunks 3] [--clients 8]
        [--threads 8] [--redis-db 10] [--baseline-runs 5] [--profile]

About a minute (two with --profile). The Redis database given is flushed at start and end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import services  # noqa: E402
from bench.ingest import Client, Requests, free_port, make_chunk, start_server  # noqa: E402

# Where a sampled stack's time goes: the innermost frame whose file starts so, first match wins
# (py-spy gives paths relative to sys.path).
CATEGORIES = (
    ("database driver (psycopg)", ("psycopg/", "psycopg_binary/", "psycopg_pool/")),
    ("database ORM (sqlalchemy)", ("sqlalchemy/",)),
    ("broker (dramatiq, redis)", ("dramatiq/", "redis/")),
    ("web (flask, werkzeug, gunicorn)", ("flask/", "werkzeug/", "gunicorn/", "spectree/")),
    ("validation (pydantic)", ("pydantic/", "pydantic_core/")),
    (
        "audio work (ffmpeg, probe, VAD, speaker features)",
        (
            "onnxruntime/",
            "numpy/",
            "scipy/",
            "av/",
            "subprocess.py",
            "mina/probe.py",
            "mina/audio.py",
            "mina/vad.py",
            "mina/insights/",
        ),
    ),
    ("storage (local files)", ("mina/storage/", "shutil.py", "tempfile.py")),
    ("logging, metrics", ("logging/", "prometheus_client/")),
    ("mina (its own Python)", ("mina/", "workers/", "api/")),
)


def _file(frame: str) -> str:
    """`func (path/file.py:12)` → `path/file.py`."""
    return frame.rpartition(" (")[2].rpartition(":")[0]


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost last in py-spy's collapsed stacks
        path = _file(frame)
        for name, prefixes in CATEGORIES:
            if path.startswith(prefixes) or any(p in path for p in prefixes if "/" in p[:-1]):
                return name
    return "other (python, stdlib)"


def summarize_profile(path: Path, top: int = 10) -> list[str]:
    """Shares by category and the hottest innermost Mina functions of a py-spy raw (collapsed)
    profile."""
    by_cat: collections.Counter[str] = collections.Counter()
    by_func: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        by_cat[_category(frames)] += n
        own = [f for f in frames if _file(f).startswith(("mina/", "workers/", "api/"))]
        by_func[own[-1] if own else "(outside Mina's code)"] += n
    if not total:
        return ["  (no samples)"]
    lines = [f"  {share / total:6.1%}  {name}" for name, share in by_cat.most_common()]
    lines.append("  by the innermost Mina frame on the stack:")
    lines += [f"  {share / total:6.1%}  {name}" for name, share in by_func.most_common(top)]
    return lines


STATS = ("sql", "sql_s", "commits", "commit_s", "redis", "redis_s")


def io_totals(stats_dir: Path) -> dict[str, dict[str, float]]:
    """Per role (web, worker): SQL statements, commits and Redis calls, with their seconds, as
    counted so far by bench/probe_site/sitecustomize.py in every process of that role."""
    out = {role: dict.fromkeys(STATS, 0.0) for role in ("web", "worker")}
    for path in stats_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        role = "web" if "gunicorn" in data.get("argv", "") else "worker"
        for key in STATS:
            out[role][key] += float(data.get(key, 0))
    return out


def io_report(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], n: int, what: str
) -> list[str]:
    lines = []
    for role in ("web", "worker"):
        d = {k: after[role][k] - before[role][k] for k in STATS}
        if not any(d.values()):
            continue
        lines.append(
            f"  {role:6} per {what}: {d['sql'] / n:5.1f} SQL statements "
            f"{d['sql_s'] / n * 1000:6.2f} ms, {d['commits'] / n:4.1f} commits "
            f"{d['commit_s'] / n * 1000:5.2f} ms, "
            f"{d['redis'] / n:5.1f} Redis calls {d['redis_s'] / n * 1000:5.2f} ms"
        )
    return lines


def _settle_stats() -> None:
    time.sleep(0.5)  # the processes write their totals every 0.2 s


def baseline(n: int, clients: int) -> float:
    """Seconds from the first send of `n` no-op messages to the worker having done them all."""
    from bench.noop_actor import QUEUE, noop
    from workers.broker import broker

    per = [list(range(c, n, clients)) for c in range(clients)]
    started = time.perf_counter()

    def send(ids: list[int]) -> None:
        for i in ids:
            noop.send(i)

    threads = [threading.Thread(target=send, args=(ids,)) for ids in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    broker.join(QUEUE, interval=5, timeout=300_000)
    return time.perf_counter() - started


def pipeline(req: Requests, port: int, clients: int, chunks: int, tag: str) -> tuple[float, float]:
    """(upload → every chunk transcribed, then finish → every barrier passed) in seconds; the
    worker must be running when called and is not stopped here (see `finish_all`)."""
    from sqlalchemy import func, select

    from mina.models import Chunk

    count = len(req.convs)
    ids = [c["id"] for c in req.convs]
    errors: list[str] = []

    def upload(client: int) -> None:
        conn = Client(port)
        for conv in range(client, count, clients):
            for k in range(chunks):
                status, body = conn.call(req.upload(conv, k))
                if status != 202:
                    errors.append(f"upload {status}: {body[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=upload, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} upload(s) failed, first: {errors[0]}")
    done = (
        select(func.count())
        .select_from(Chunk)
        .where(Chunk.conversation_id.in_(ids), Chunk.status == "transcribed")
    )
    services.wait(lambda: services.scalar(done) == count * chunks, f"{tag}: chunks", poll=0.01)
    return time.perf_counter() - started, 0.0


def finish_all(req: Requests, port: int, clients: int) -> float:
    """Finish every conversation over HTTP (the barrier runs in the request); seconds until
    every barrier passed."""
    from sqlalchemy import func, select

    from mina.models import Conversation

    count = len(req.convs)
    errors: list[str] = []

    def finish(client: int) -> None:
        conn = Client(port)
        for i in range(client, count, clients):
            conv = req.convs[i]
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {conv['token']}",
            }
            status, body = conn.call(
                ("POST", f"/api/conversations/{conv['id']}/finish", b"{}", headers)
            )
            if status != 202:
                errors.append(f"finish {status}: {body[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=finish, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} finish call(s) failed, first: {errors[0]}")
    ids = [c["id"] for c in req.convs]
    passed = (
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.id.in_(ids), Conversation.is_all_chunks_transcribed.is_(True))
    )
    services.wait(lambda: services.scalar(passed) == count, "barriers", poll=0.01)
    return time.perf_counter() - started


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "250"]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the load starts
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=3, help="per conversation")
    parser.add_argument("--clients", type=int, default=8, help="upload connections / senders")
    parser.add_argument("--threads", type=int, default=8, help="worker threads")
    parser.add_argument("--redis-db", type=int, default=10)
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=5,
        help="no-op runs of N messages each; their median is the baseline (one run is ~1 s: "
        "a single one moved the ratio with every hiccup of a shared machine)",
    )
    parser.add_argument("--profile", action="store_true", help="a second run under py-spy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import redis

    work = Path(tempfile.mkdtemp(prefix="mina-throughput-"))
    db_name = services.configure(
        work,
        args.redis_db,
        {
            "MINA_TRANSCRIBER": "simulated",
            "MINA_SIM_LATENCY_SECONDS": "0",
            "MINA_DB_POOL_SIZE": "20",
            "MINA_DB_MAX_OVERFLOW": "50",
        },
    )
    services.admin(f"CREATE DATABASE {db_name}")
    stats_dir = work / "io"
    stats_dir.mkdir()
    probe_env = {
        "MINA_BENCH_STATS_DIR": str(stats_dir),
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "bench" / "probe_site"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),
    }
    redis_url = os.environ["MINA_BROKER_URL"]
    redis.Redis.from_url(redis_url).flushdb()
    worker = server = None
    n = args.conversations * args.chunks
    try:
        from mina import db
        from mina.settings import get_settings
        from mina_cli import migrate

        url = get_settings().resolved_database_url
        migrate.upgrade(url)
        db.configure(url)
        chunk = make_chunk(work)
        port = free_port()
        server = start_server({**os.environ, **probe_env}, port, work / "web.log")
        worker = services.start_worker(
            work / "worker.log", probe_env, modules=("bench.noop_actor",), threads=args.threads
        )
        print(
            f"{args.conversations} conversations x {args.chunks} chunks = {n} chunks "
            f"(30 s Opus, {len(chunk)} bytes), {args.clients} clients, 1 worker process x "
            f"{args.threads} threads, simulated transcriber at 0 s, cores={os.cpu_count()}, "
            f"load={os.getloadavg()[0]:.2f} (a shared machine: others were running too)",
            flush=True,
        )
        # Warm-up: imports, pools, connections on both sides.
        baseline(50, args.clients)
        warm = Requests(chunk, port)
        warm.new_conversations(args.clients, "warm")
        pipeline(warm, port, args.clients, 1, "warm-up")

        _settle_stats()
        io_0 = io_totals(stats_dir)
        base_runs = sorted(baseline(n, args.clients) for _ in range(args.baseline_runs))
        base_s = statistics.median(base_runs)
        _settle_stats()
        io_1 = io_totals(stats_dir)
        req = Requests(chunk, port)
        req.new_conversations(args.conversations, "run")
        _settle_stats()
        io_2 = io_totals(stats_dir)
        up_s, _ = pipeline(req, port, args.clients, args.chunks, "pipeline")
        _settle_stats()
        io_3 = io_totals(stats_dir)
        services.stop_worker(worker)
        worker = None
        fin_s = finish_all(req, port, args.clients)
        _settle_stats()
        io_4 = io_totals(stats_dir)
        pipe_s = up_s + fin_s
        base_rate, pipe_rate = n / base_s, n / pipe_s
        overhead_ms = (pipe_s - base_s) / n * 1000
        print(
            f"baseline  {n} no-op messages: {base_s:6.2f} s  {base_rate:8.1f} msg/s (median of "
            f"{len(base_runs)} runs, {base_runs[0]:.2f}-{base_runs[-1]:.2f} s)"
        )
        print(
            f"pipeline  {n} chunks: upload → transcribed {up_s:6.2f} s, finish → barrier "
            f"({args.conversations} conversations) {fin_s:5.2f} s; {pipe_rate:8.1f} chunks/s"
        )
        print(
            f"overhead  {overhead_ms:.1f} ms per chunk beyond the baseline "
            f"({pipe_s / n * 1000:.1f} ms vs {base_s / n * 1000:.2f} ms)"
        )
        print("where the I/O time goes (client side: round trips as the processes see them):")
        print("\n".join(io_report(io_0, io_1, n * len(base_runs), "no-op message")))
        print("\n".join(io_report(io_2, io_3, n, "chunk, upload → transcribed")))
        print("\n".join(io_report(io_3, io_4, args.conversations, "conversation, finish")))
        figures: dict[str, Any] = {
            "chunks": n,
            "baseline_s": base_s,
            "baseline_runs_s": base_runs,
            "upload_to_transcribed_s": up_s,
            "finish_to_barrier_s": fin_s,
            "overhead_ms_per_chunk": overhead_ms,
            "io": {"baseline": [io_0, io_1], "upload": [io_2, io_3], "finish": [io_3, io_4]},
        }
        if args.profile:
            redis.Redis.from_url(redis_url).flushdb()
            worker = services.start_worker(
                work / "worker2.log", modules=("bench.noop_actor",), threads=args.threads
            )
            req2 = Requests(chunk, port)
            req2.new_conversations(args.conversations, "prof")
            spies = {
                "web (gunicorn)": (py_spy(server.pid, work / "web.prof"), work / "web.prof"),
                "worker (dramatiq)": (py_spy(worker.pid, work / "wk.prof"), work / "wk.prof"),
            }
            prof_s, _ = pipeline(req2, port, args.clients, args.chunks, "profiled")
            for proc, _ in spies.values():
                proc.send_signal(2)  # SIGINT: py-spy writes its profile
            for name, (proc, out) in spies.items():
                try:
                    _, err = proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    err = b"timed out"
                print(f"\nprofile of the {name} during upload → transcribed ({prof_s:.2f} s):")
                if out.exists():
                    print("\n".join(summarize_profile(out)))
                else:
                    print(f"  py-spy wrote nothing: {err.decode(errors='replace')[-300:]}")
        if args.json:
            print(json.dumps(figures))
        print(f"ratio={base_rate / pipe_rate:.2f}")
    finally:
        if worker is not None:
            services.stop_worker(worker)
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        from mina import db as _db

        with contextlib.suppress(Exception):  # not configured: nothing to close
            _db.get_engine().dispose()
        redis.Redis.from_url(redis_url).flushdb()
        services.admin(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


if __name__ == "__main__":
    main()

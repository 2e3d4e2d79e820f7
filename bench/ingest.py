"""Acknowledgement time of direct chunk uploads and of provider webhooks, against a live server.

Starts the web process with the Procfile's command (gunicorn, one worker of 64 threads)
on a throwaway PostgreSQL database and a Redis database (no workers: messages wait in Redis).

The load model is a meeting's: a recorder sends one 30 s chunk every 30 s, and the provider
posts one webhook per chunk. So the headline figures come from an open-loop, paced load:

  paced     N recorders (default 50), each with its own keep-alive connection and conversation,
            send an upload (a 30 s Opus chunk) every `--period` seconds (default 30, the real
            cadence) for `--rounds` rounds, starting at a random phase so they are not in step.
            For every chunk the provider sends a webhook half a period later, on its own
            connection per recorder, and a third connection per recorder sends GET /healthz a
            quarter period after the upload: the baseline, under the same load, in the same
            run. Latency is measured from the scheduled send time, so a request that could not
            be sent on time (its connection still busy) counts its wait: no coordinated
            omission.
  fast      the same at `--fast-period` (default 3 s: ten times the real rate), compressed time;
  webhooks  webhooks alone (and /healthz) at `--webhook-period` (default 0.5 s per recorder:
            60 times the real rate), to see the webhook path well beyond its real pace;
  saturation  the closed loop: N clients each firing uploads (then webhooks) back to back with
            no pause. Its latencies are queueing, not service time; what it tells is the
            throughput one web process sustains (uploads/s, webhooks/s) and so how many
            recorders at one chunk per 30 s that is;
  1x        one client, one request at a time: the service time the other figures add to;
  probe     the decode probe alone (mina.probe.probe) on the same chunk, outside the server.

Prints p50/p99/max per kind, the ratio to the /healthz baseline of the same phase, the targets
(upload p99 <= 50 ms, webhook p99 <= 20 ms on this machine) met or NOT met for the paced phases,
and as the last line `ratio=<upload p99 / /healthz p99 at the real cadence>`.
About 3 minutes with the defaults (the real cadence alone takes `--rounds` periods).

Usage: .venv/bin/python bench/ingest.py [--clients 50] [--period 30] [--rounds 3]
       [--fast-period 3 (0: skip)] [--fast-rounds 10] [--webhook-period 0.5 (0: skip)]
       [--webhook-rounds 20] [--redis-db 14] [--seed 1] [--json]
       [--uploads-only] (the paced phases, uploads and /healthz only: 500 recorders at the real
       cadence with `--clients 500 --uploads-only --fast-period 0`)
       [--breakdown] (per upload, inside the web process: container probe, blob write, SQL
       statements, commits, Redis calls, each with its mean time)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mina.webhooks import token  # noqa: E402

SECRET = "bench-webhook-secret"
TARGETS = {"upload": 0.050, "webhook": 0.020}
CHUNK_SECONDS = 30.0

Call = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_chunk(work: Path) -> bytes:
    path = work / "chunk.ogg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=330:d={CHUNK_SECONDS:.0f}",
         "-c:a", "libopus", "-b:a", "32k", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def create_database() -> tuple[str, str]:
    import psycopg

    name = f"mina_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import psycopg

    conn = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def web_command(port: int) -> list[str]:
    """The Procfile's `web` command, bound to 127.0.0.1:`port`, with the venv's gunicorn."""
    line = next(
        ln.split(":", 1)[1]
        for ln in (ROOT / "Procfile").read_text().splitlines()
        if ln.startswith("web:")
    )
    cmd = shlex.split(line)
    cmd[0] = str(ROOT / ".venv" / "bin" / cmd[0])
    cmd[cmd.index("-b") + 1] = f"127.0.0.1:{port}"
    return cmd


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = web_command(port)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}")


class Client:
    """One keep-alive HTTP/1.1 connection, reopened as a browser would once the server closed it
    (gunicorn closes a connection idle for 2 s, so a recorder at one chunk per 30 s connects
    again for every chunk; the connect is part of the latency)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def _closed_by_server(self) -> bool:
        sock = self.conn.sock
        return sock is not None and bool(select.select([sock], [], [], 0)[0])  # EOF while idle

    def call(self, call: Call) -> tuple[int, bytes]:
        method, path, body, headers = call
        for attempt in (1, 2):
            if self._closed_by_server():
                self.conn.close()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # closed between our check and the request: once more
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def multipart(index: int, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="index"\r\n\r\n{index}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.ogg"\r\n'
        f"Content-Type: audio/ogg\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


@dataclass
class Requests:
    """Builds each kind of request; conversations are made per phase, one per recorder."""

    chunk: bytes
    port: int
    tag: str = ""
    convs: list[dict[str, str]] = field(default_factory=list)

    def new_conversations(self, count: int, tag: str) -> None:
        setup, self.tag, self.convs = Client(self.port), tag, []
        for _ in range(count):
            status, body = setup.call(
                ("POST", "/api/conversations", b"{}", {"Content-Type": "application/json"})
            )
            assert status == 201, body
            self.convs.append(json.loads(body))

    def upload(self, client: int, index: int) -> Call:
        conv = self.convs[client]
        body, ctype = multipart(index, self.chunk)
        headers = {"Content-Type": ctype, "Authorization": f"Bearer {conv['token']}"}
        return "POST", f"/api/conversations/{conv['id']}/chunks", body, headers

    def webhook(self, client: int, index: int) -> Call:
        chunk_id = f"{self.tag}{client:03d}x{index:05d}"
        body = json.dumps({"transcript_id": f"job-{uuid.uuid4().hex}", "status": "completed"})
        headers = {
            "Content-Type": "application/json",
            "X-Mina-Webhook-Token": token(SECRET, "assemblyai", chunk_id),
        }
        return (
            "POST",
            f"/webhooks/transcription/assemblyai?chunk={chunk_id}",
            body.encode(),
            headers,
        )

    @staticmethod
    def healthz(client: int, index: int) -> Call:
        return "GET", "/healthz", None, {}


EXPECTED = {"upload": 202, "webhook": 200, "healthz": 200}


@dataclass
class Samples:
    latency: list[float] = field(default_factory=list)  # from the scheduled send time
    lag: list[float] = field(default_factory=list)  # scheduled → actually sent
    wall: float = 0.0


def paced(
    port: int,
    clients: int,
    period: float,
    rounds: int,
    streams: dict[str, tuple[float, Callable[[int, int], Call]]],
    rng: random.Random,
) -> dict[str, Samples]:
    """Open loop: every (recorder, kind) is a thread with its own connection that sends at
    phase + offset * period + k * period, whatever happened to the previous request."""
    samples = {kind: Samples() for kind in streams}
    errors: list[str] = []
    lock = threading.Lock()
    phases = [rng.uniform(0.0, period) for _ in range(clients)]
    start = time.perf_counter() + 1.0  # every thread is waiting before the first send

    def run(client: int, kind: str, offset: float, make: Callable[[int, int], Call]) -> None:
        conn, mine, lags = Client(port), [], []
        for k in range(rounds):
            due = start + phases[client] + (offset + k) * period
            calls = make(client, k)  # built before the due time: not part of the latency
            while (left := due - time.perf_counter()) > 0:
                time.sleep(left)
            sent = time.perf_counter()
            try:
                status, body = conn.call(calls)
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, repr(exc).encode()
            done = time.perf_counter()
            if status != EXPECTED[kind]:
                with lock:
                    errors.append(f"{kind} {status}: {body[:200]!r}")
            mine.append(done - due)
            lags.append(sent - due)
        with lock:
            samples[kind].latency += mine
            samples[kind].lag += lags

    threads = [
        threading.Thread(target=run, args=(c, kind, offset, make), daemon=True)
        for c in range(clients)
        for kind, (offset, make) in streams.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for s in samples.values():
        s.wall = wall
    if any(len(s.latency) != clients * rounds for s in samples.values()):
        errors.append("a client thread died (its traceback is above)")
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed, first: {errors[0]}")
    return samples


def closed_loop(
    port: int, clients: int, count: int, kind: str, make: Callable[[int, int], Call]
) -> Samples:
    """Every client sends its next request as soon as the last one is answered."""
    out = Samples()
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def run(client: int) -> None:
        conn, mine = Client(port), []
        calls = [make(client, k) for k in range(count)]
        barrier.wait()
        for call in calls:
            sent = time.perf_counter()
            try:
                status, body = conn.call(call)
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, repr(exc).encode()
            mine.append(time.perf_counter() - sent)
            if status != EXPECTED[kind]:
                with lock:
                    errors.append(f"{kind} {status}: {body[:200]!r}")
        with lock:
            out.latency += mine

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    out.wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed, first: {errors[0]}")
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(
    phase: str,
    kind: str,
    s: Samples,
    base: Samples | None = None,
    *,
    judge: bool = False,
    note: str = "",
) -> dict[str, Any]:
    values = s.latency
    row: dict[str, Any] = {
        "phase": phase,
        "kind": kind,
        "n": len(values),
        "p50_ms": pct(values, 50) * 1000,
        "p99_ms": pct(values, 99) * 1000,
        "max_ms": max(values) * 1000,
        "per_s": len(values) / s.wall if s.wall else 0.0,
    }
    line = (
        f"  {kind:8s} n={row['n']:5d}  p50={row['p50_ms']:8.1f} ms  p99={row['p99_ms']:8.1f} ms"
        f"  max={row['max_ms']:8.1f} ms  {row['per_s']:6.1f}/s"
    )
    if s.lag:
        row["lag_p99_ms"] = pct(s.lag, 99) * 1000
        line += f"  sent late p99={row['lag_p99_ms']:6.1f} ms"
    if base is not None and base is not s:
        row["ratio_p50"] = pct(values, 50) / pct(base.latency, 50)
        row["ratio_p99"] = pct(values, 99) / pct(base.latency, 99)
        line += f"  ratio p50={row['ratio_p50']:.1f}x p99={row['ratio_p99']:.1f}x vs /healthz"
    if judge and kind in TARGETS:
        row["target_met"] = pct(values, 99) <= TARGETS[kind]
        verdict = "met" if row["target_met"] else "NOT met"
        line += f"  target p99<={TARGETS[kind] * 1000:.0f} ms: {verdict}"
    print(line + note, flush=True)
    return row


BREAKDOWN = (
    ("probe", "probe_s", "container probe"),
    ("store", "store_s", "blob write"),
    ("sql", "sql_s", "SQL statements"),
    ("commits", "commit_s", "commits"),
    ("redis", "redis_s", "Redis calls (enqueue)"),
)


def breakdown_totals(stats_dir: Path) -> dict[str, float]:
    """What the web process counted so far (bench/probe_site/sitecustomize.py)."""
    out: dict[str, float] = {}
    for path in stats_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key, value in data.items():
            if isinstance(value, int | float):
                out[key] = out.get(key, 0.0) + value
    return out


def print_breakdown(
    before: dict[str, float], after: dict[str, float], uploads: int, got: Samples
) -> None:
    mean = sum(got.latency) / len(got.latency) * 1000
    print(f"  where an upload's time goes, means over {uploads} uploads (acknowledged in "
          f"{mean:.1f} ms on average, from the scheduled send):")  # fmt: skip
    accounted = 0.0
    for calls, seconds, label in BREAKDOWN:
        n = (after.get(calls, 0.0) - before.get(calls, 0.0)) / uploads
        ms = (after.get(seconds, 0.0) - before.get(seconds, 0.0)) / uploads * 1000
        accounted += ms
        print(f"    {label:24} {n:5.1f} per upload  {ms:6.2f} ms")
    print(f"    {'the rest':24} {'':19}{mean - accounted:6.2f} ms (HTTP, parsing, spooling, "
          "authorization's hashing, queueing for a thread, Python)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent recorders")
    parser.add_argument("--period", type=float, default=CHUNK_SECONDS, help="s between chunks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fast-period", type=float, default=3.0, help="0 skips the phase")
    parser.add_argument("--fast-rounds", type=int, default=10)
    parser.add_argument("--webhook-period", type=float, default=0.5, help="0 skips the phase")
    parser.add_argument("--webhook-rounds", type=int, default=20)
    parser.add_argument("--uploads", type=int, default=4, help="per client, saturation phase")
    parser.add_argument("--webhooks", type=int, default=20, help="per client, saturation phase")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1, help="for the recorders' phases")
    parser.add_argument(
        "--upload-check",
        choices=("request", "worker"),
        default="worker",
        help="MINA_UPLOAD_DECODE_CHECK of the server: packets only (the default), or decode in "
        "the request",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--uploads-only",
        action="store_true",
        help="the paced phases with uploads and /healthz only (no webhooks), no other phase: "
        "e.g. --clients 500 --uploads-only for 500 recorders at the real cadence",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="count inside the web process, per upload, the container probe, the blob write, "
        "SQL statements, commits and Redis calls with their time (bench/probe_site)",
    )
    args = parser.parse_args()

    import redis

    from mina import probe
    from mina_cli import migrate

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    work = Path(tempfile.mkdtemp(prefix="mina-bench-"))
    chunk = make_chunk(work)
    db_name, db_url = create_database()
    migrate.upgrade(db_url)
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINA_")},
        "MINA_DATABASE_URL": db_url,
        "MINA_BROKER_URL": redis_url,
        "MINA_STORAGE_URL": str(work / "blobs"),
        "MINA_TRANSCRIBER": "simulated",
        "MINA_WEBHOOK_SECRET": SECRET,
        "MINA_UPLOAD_DECODE_CHECK": args.upload_check,
        "MINA_DB_POOL_SIZE": "20",
        "MINA_DB_MAX_OVERFLOW": "50",
    }
    stats_dir = work / "io"
    if args.breakdown:
        stats_dir.mkdir()
        env["MINA_BENCH_STATS_DIR"] = str(stats_dir)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench" / "probe_site"), str(ROOT)])
    port = free_port()
    server = start_server(env, port, work / "gunicorn.log")
    rng = random.Random(args.seed)
    req = Requests(chunk, port)
    rows: list[dict[str, Any]] = []
    n = args.clients
    try:
        print(
            f"{n} recorders, one {CHUNK_SECONDS:.0f} s Opus chunk of {len(chunk)} bytes, "
            f"{' '.join(web_command(0)[1:-1])}, upload check: {args.upload_check}, "
            f"cores={os.cpu_count()}, "
            f"load={os.getloadavg()[0]:.2f}",
            flush=True,
        )
        # Warm-up: connections, the pool, and the imports the first requests pay for.
        req.new_conversations(2, "warm")
        paced(port, 2, 0.2, 3, {"upload": (0.0, req.upload), "webhook": (0.5, req.webhook)}, rng)

        def mixed(period: float, rounds: int, tag: str, title: str) -> None:
            req.new_conversations(n, tag)
            hook = "" if args.uploads_only else f", its webhook {period / 2:g} s later"
            print(
                f"{title}: each recorder one upload every {period:g} s{hook}, /healthz in "
                f"between; {rounds} rounds, random phase ({n / period:.1f} uploads/s offered)",
                flush=True,
            )
            streams: dict[str, tuple[float, Callable[[int, int], Call]]] = {
                "upload": (0.0, req.upload),
                "healthz": (0.25, req.healthz),
            }
            if not args.uploads_only:
                streams["webhook"] = (0.5, req.webhook)
            before = breakdown_totals(stats_dir) if args.breakdown else None
            got = paced(port, n, period, rounds, streams, rng)
            for kind in ("healthz", "upload", "webhook"):
                if kind in got:
                    rows.append(report(tag, kind, got[kind], got["healthz"], judge=True))
            if before is not None:
                time.sleep(0.5)  # the web process writes its totals every 0.2 s
                print_breakdown(before, breakdown_totals(stats_dir), n * rounds, got["upload"])

        mixed(args.period, args.rounds, "paced", f"paced, real cadence ({args.period:g} s)")
        real = {r["kind"]: r for r in rows if r["phase"] == "paced"}
        if args.uploads_only:
            print(f"ratio={real['upload']['p99_ms'] / real['healthz']['p99_ms']:.2f}")
            return
        if args.fast_period > 0:
            speed = args.period / args.fast_period
            mixed(args.fast_period, args.fast_rounds, "fast", f"paced, compressed {speed:g}x time")
        if args.webhook_period > 0:
            req.new_conversations(n, "hook")
            print(
                f"webhooks alone: each of {n} senders one every {args.webhook_period:g} s "
                f"({n / args.webhook_period:.0f}/s offered), /healthz half a period later; "
                f"{args.webhook_rounds} rounds",
                flush=True,
            )
            got = paced(
                port,
                n,
                args.webhook_period,
                args.webhook_rounds,
                {"webhook": (0.0, req.webhook), "healthz": (0.5, req.healthz)},
                rng,
            )
            for kind in ("healthz", "webhook"):
                rows.append(report("webhooks", kind, got[kind], got["healthz"], judge=True))

        print(f"saturation (closed loop, {n} clients back to back; latencies are queueing):")
        req.new_conversations(n, "sat")
        base = closed_loop(port, n, args.webhooks, "healthz", req.healthz)
        rows.append(report("saturation", "healthz", base))
        for kind, count, make in (
            ("upload", args.uploads, req.upload),
            ("webhook", args.webhooks, req.webhook),
        ):
            got_sat = closed_loop(port, n, count, kind, make)
            rate = len(got_sat.latency) / got_sat.wall
            recorders = rate * CHUNK_SECONDS
            note = f"  -> ~{recorders:,.0f} recorders at one chunk per {CHUNK_SECONDS:.0f} s"
            rows.append(report("saturation", kind, got_sat, base, note=note))
            rows[-1]["recorders"] = recorders

        print("one client, one request at a time (service time):")
        req.new_conversations(1, "solo")
        solo = Client(port)
        for kind, count, make in (
            ("healthz", 200, req.healthz),
            ("webhook", 200, req.webhook),
            ("upload", 20, req.upload),
        ):
            one = Samples()
            for i in range(count):
                call = make(0, i)
                sent = time.perf_counter()
                status, body = solo.call(call)
                one.latency.append(time.perf_counter() - sent)
                assert status == EXPECTED[kind], body
            one.wall = sum(one.latency)
            rows.append(report("1x", kind, one))

        probes = Samples()
        for _ in range(10):
            started = time.perf_counter()
            probe.probe(work / "chunk.ogg", max_seconds=600, decode=args.upload_check == "request")
            probes.latency.append(time.perf_counter() - started)
        probes.wall = sum(probes.latency)
        what = "decode probe" if args.upload_check == "request" else "container check"
        print(f"the {what} alone, in this process, one at a time:")
        rows.append(report("probe", "probe", probes))

        met = [f"{r['phase']} {r['kind']}" for r in rows if r.get("target_met") is True]
        missed = [f"{r['phase']} {r['kind']}" for r in rows if r.get("target_met") is False]
        print(f"targets met: {', '.join(met) or 'none'}; NOT met: {', '.join(missed) or 'none'}")
        print(f"ratio={real['upload']['p99_ms'] / real['healthz']['p99_ms']:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        redis.Redis.from_url(redis_url).flushdb()
        drop_database(db_name)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""Acknowledgement time of direct chunk uploads and of provider webhooks, against a live server.

Starts the web process as the Procfile does (`gunicorn -w 1 --threads 64 'api:create_app()'`)
on a throwaway PostgreSQL database and a Redis database (no workers: messages wait in Redis),
then with N concurrent clients (keep-alive HTTP/1.1, one conversation each) measures:

  baseline  GET /healthz (no database, no disk): what the server, the GIL and the machine cost;
  upload    POST …/chunks with a 30 s Opus chunk: spool + sha256, magic bytes, ffmpeg decode
            probe, blob write, row + event insert, Redis enqueue;
  webhook   POST /webhooks/transcription/assemblyai: HMAC check, INSERT, Redis enqueue;
  probe     the decode probe alone (mina.probe.probe), serially, outside the server;
  serial    the same three requests from one client, one at a time: the service time that
            the concurrent figures add queueing to.

Prints p50/p99/max per kind, the ratio to the baseline measured in the same run, and the targets
(upload p99 <= 50 ms, webhook p99 <= 20 ms on this machine), met or not.
Usage: .venv/bin/python bench/ingest.py [--clients 50] [--uploads 4] [--webhooks 20]
       [--redis-db 14]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mina.webhooks import token  # noqa: E402

SECRET = "bench-webhook-secret"
TARGETS = {"upload": 0.050, "webhook": 0.020}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_chunk(work: Path) -> bytes:
    path = work / "chunk.ogg"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:duration=30",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


def create_database() -> tuple[str, str]:
    import psycopg2

    name = f"mina_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "-w",
        "1",
        "--threads",
        "64",
        "-b",
        f"127.0.0.1:{port}",
        "api:create_app()",
    ]
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
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started


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


def run_clients(
    clients: int, work: Callable[[int, list[float]], None]
) -> tuple[list[float], float]:
    times: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients)

    def body(n: int) -> None:
        try:
            start.wait()
            work(n, times[n])
        except BaseException as exc:  # noqa: BLE001 - a bench: report it below and stop
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]!r}")
    return [t for ts in times for t in ts], time.perf_counter() - began


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(name: str, values: list[float], wall: float, base: list[float] | None) -> dict[str, Any]:
    row = {
        "kind": name,
        "n": len(values),
        "p50_ms": pct(values, 50) * 1000,
        "p99_ms": pct(values, 99) * 1000,
        "max_ms": max(values) * 1000,
        "per_s": len(values) / wall if wall else 0.0,
    }
    line = (
        f"{name:11s} n={row['n']:5d}  p50={row['p50_ms']:8.1f} ms  p99={row['p99_ms']:8.1f} ms"
        f"  max={row['max_ms']:8.1f} ms  {row['per_s']:7.1f}/s"
    )
    if base:
        row["ratio_p50"] = pct(values, 50) / pct(base, 50)
        row["ratio_p99"] = pct(values, 99) / pct(base, 99)
        line += f"  ratio p50={row['ratio_p50']:.1f}x p99={row['ratio_p99']:.1f}x vs /healthz"
    if name in TARGETS:
        met = pct(values, 99) <= TARGETS[name]
        line += f"  target p99<={TARGETS[name] * 1000:.0f} ms: {'met' if met else 'NOT met'}"
    print(line, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=4, help="uploads per client")
    parser.add_argument("--webhooks", type=int, default=20, help="webhooks per client")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
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
        "MINA_DB_POOL_SIZE": "20",
        "MINA_DB_MAX_OVERFLOW": "50",
    }
    port = free_port()
    server = start_server(env, port, work / "gunicorn.log")
    rows: list[dict[str, Any]] = []
    try:
        print(
            f"{args.clients} clients, one 30 s Opus chunk of {len(chunk)} bytes, "
            f"cores={os.cpu_count()}, load={os.getloadavg()[0]:.2f}",
            flush=True,
        )
        # Each client: its own conversation and keep-alive connection.
        setup = Client(port)
        convs = []
        for _ in range(args.clients):
            status, body, _ = setup.call(
                "POST", "/api/conversations", b"{}", {"Content-Type": "application/json"}
            )
            assert status == 201, body
            convs.append(json.loads(body))

        def healthz(n: int, out: list[float]) -> None:
            c = Client(port)
            for _ in range(args.webhooks):
                status, _, t = c.call("GET", "/healthz")
                assert status == 200
                out.append(t)

        def uploads(n: int, out: list[float]) -> None:
            c, conv = Client(port), convs[n]
            first = warm_offset.get(n, 0)
            for index in range(first, first + args.uploads):
                body, ctype = multipart(index, chunk)
                status, data, t = c.call(
                    "POST",
                    f"/api/conversations/{conv['id']}/chunks",
                    body,
                    {"Content-Type": ctype, "Authorization": f"Bearer {conv['token']}"},
                )
                assert status == 202, data
                out.append(t)

        solo = convs[0]

        def serial_upload(c: Client, i: int) -> tuple[int, bytes, float]:
            body, ctype = multipart(1000 + i, chunk)
            headers = {"Content-Type": ctype, "Authorization": f"Bearer {solo['token']}"}
            return c.call("POST", f"/api/conversations/{solo['id']}/chunks", body, headers)

        def serial_webhook(c: Client, i: int) -> tuple[int, bytes, float]:
            chunk_id = f"solo{i:05d}"
            body = json.dumps({"transcript_id": f"solo-{uuid.uuid4().hex}", "status": "completed"})
            headers = {
                "Content-Type": "application/json",
                "X-Mina-Webhook-Token": token(SECRET, "assemblyai", chunk_id),
            }
            path = f"/webhooks/transcription/assemblyai?chunk={chunk_id}"
            return c.call("POST", path, body.encode(), headers)

        def webhooks(n: int, out: list[float], count: int | None = None) -> None:
            c = Client(port)
            for k in range(args.webhooks if count is None else count):
                chunk_id = f"bench{n:03d}x{k:04d}"
                body = json.dumps(
                    {"transcript_id": f"job-{uuid.uuid4().hex}", "status": "completed"}
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Mina-Webhook-Token": token(SECRET, "assemblyai", chunk_id),
                }
                status, data, t = c.call(
                    "POST", f"/webhooks/transcription/assemblyai?chunk={chunk_id}", body, headers
                )
                assert status == 200, data
                out.append(t)

        # Warm-up: connections, the pool, and the imports the first enqueue pays for.
        run_clients(min(args.clients, 10), healthz)
        warm = convs.pop()
        body, ctype = multipart(0, chunk)
        status, data, _ = setup.call(
            "POST",
            f"/api/conversations/{warm['id']}/chunks",
            body,
            {"Content-Type": ctype, "Authorization": f"Bearer {warm['token']}"},
        )
        assert status == 202, data
        convs.append(warm)  # its index 0 is taken: that client starts at 1
        warm_offset = {len(convs) - 1: 1}
        run_clients(1, lambda n, out: webhooks(999, out, 3))
        base, wall = run_clients(args.clients, healthz)
        rows.append(report("baseline", base, wall, None))
        values, wall = run_clients(args.clients, webhooks)
        rows.append(report("webhook", values, wall, base))
        values, wall = run_clients(args.clients, uploads)
        rows.append(report("upload", values, wall, base))

        probes = []
        for _ in range(10):
            started = time.perf_counter()
            probe.probe(work / "chunk.ogg", max_seconds=600)
            probes.append(time.perf_counter() - started)
        rows.append(report("probe", probes, sum(probes), None))

        serial = Client(port)
        for kind, call in (
            ("healthz", lambda i: serial.call("GET", "/healthz")),
            ("webhook", lambda i: serial_webhook(serial, i)),
            ("upload", lambda i: serial_upload(serial, i)),
        ):
            times = []
            for i in range(20 if kind == "upload" else 200):
                status, data, t = call(i)
                assert status in (200, 202), data
                times.append(t)
            rows.append(report(f"1x {kind}", times, sum(times), None))
        print(
            "probe = mina.probe.probe on the same chunk, one at a time, no other load from "
            "this bench: the decode probe's floor inside every upload",
            flush=True,
        )
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

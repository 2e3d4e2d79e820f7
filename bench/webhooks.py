"""Outgoing webhooks: deliveries per second and delivery lag against the ledger.

Real PostgreSQL, Redis and one `dramatiq workers.actors` process (4 threads); a local receiver
(ThreadingHTTPServer on 127.0.0.1) verifies every signature with the `standardwebhooks` package
and notes when each event id first arrived. Events are recorded by 4 threads in this process
(`events.record` in a transaction with the conversation lock, as the pipeline does), spread over
`--conversations` conversations; one subscription to `*` with `max_concurrency` 4.

Baselines in the same run: the ledger's own write rate (the same threads recording, no
subscription), and a bare POST loop (4 threads signing and POSTing the same bodies straight to
the same receiver, no database or queue). Printed: events/s of each, deliveries/s end to end of
a burst, lag p50/p99 (commit → first arrival at the receiver), duplicates; then `--idle` events
one at a time (lag on an idle system, against the ledger transaction's own time); and the last
lines `ratio_vs_ledger=<deliveries/s ÷ ledger writes/s>`, `ratio_vs_bare_post=<… ÷ bare
POSTs/s>` and `idle_lag_ratio_vs_ledger_tx=<idle lag p50 ÷ ledger transaction p50>`.

    .venv/bin/python bench/webhooks.py [--events 400] [--conversations 20] [--idle 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import admin, configure, pct  # noqa: E402


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.first: dict[str, float] = {}
        self.hits = 0
        self.forged = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

            def do_POST(self) -> None:
                from standardwebhooks import Webhook, WebhookVerificationError

                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.time()
                try:
                    Webhook(receiver.secret).verify(raw, dict(self.headers.items()))
                    ok = True
                except WebhookVerificationError:
                    ok = False
                with receiver.lock:
                    receiver.hits += 1
                    if not ok:
                        receiver.forged += 1
                    else:
                        receiver.first.setdefault(self.headers["webhook-id"], now)
                self.send_response(200 if ok else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def in_threads(n: int, work: Callable[[int], None], threads: int = 4) -> float:
    """Run work(0..n-1) over `threads` threads; seconds taken."""
    started = time.monotonic()
    pool = [
        threading.Thread(target=lambda t=t: [work(i) for i in range(t, n, threads)])
        for t in range(threads)
    ]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--idle", type=int, default=50, help="events sent one at a time")
    parser.add_argument("--redis-db", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mina-bench-wh-"))
    name = configure(
        workdir,
        args.redis_db,
        {
            "MINA_OPERATOR_TOKEN": "bench",
            "MINA_WORKER_THREADS": "4",  # as `mina worker` runs the 4 threads below
        },
    )
    admin(f"CREATE DATABASE {name}")
    worker: subprocess.Popen[bytes] | None = None
    try:
        from mina_cli import migrate

        migrate.upgrade(os.environ["MINA_DATABASE_URL"])
        import redis

        redis.Redis.from_url(os.environ["MINA_BROKER_URL"]).flushdb()
        log = workdir / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.actors", "-p", "1", "-t", "4"],
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while "is ready for action" not in log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log.read_text()}")
            time.sleep(0.2)
        run(args)
    finally:
        if worker is not None:
            os.killpg(worker.pid, 15)
            worker.wait(timeout=30)
        from mina import db

        db.get_engine().dispose()
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(args: argparse.Namespace) -> None:
    import httpx2

    from mina import db, events
    from mina.db import session_scope
    from mina.models import Conversation
    from mina.outbound import signing, subscriptions
    from workers import outbound  # the fan-out wake-up after this process's commits

    db.configure(os.environ["MINA_DATABASE_URL"])
    receiver = Receiver()
    with session_scope() as s:
        convs = [
            Conversation(title=f"bench {i}", token_hash="-") for i in range(args.conversations)
        ]
        s.add_all(convs)
        s.flush()
        cids = [c.id for c in convs]

    def record(committed: dict[int, float]) -> Callable[[int], None]:
        def one(i: int) -> None:
            with session_scope() as s:
                ev = events.record(s, cids[i % len(cids)], "bench_event", {"n": i})
                event_id = ev.id
            committed[event_id] = time.time()

        return one

    # 1. baseline: the ledger alone (no active subscription: nothing fans out)
    base: dict[int, float] = {}
    ledger_s = in_threads(args.events, record(base))
    ledger_rate = args.events / ledger_s

    # 2. baseline: a bare POST loop to the same receiver, same bodies, signed
    receiver.secret = signing.new_secret()
    client = httpx2.Client()
    bodies = [json.dumps({"id": i, "type": "bench_event"}).encode() for i in range(args.events)]

    def post(i: int) -> None:
        msg_id = f"bare-{i}"
        hdrs = signing.headers(receiver.secret, msg_id, int(time.time()), bodies[i])
        client.post(receiver.url, content=bodies[i], headers=hdrs, timeout=5.0)

    bare_s = in_threads(args.events, post)
    bare_rate = args.events / bare_s

    # 3. through Mina: subscription, fan-out, Dramatiq, signed POSTs
    with session_scope() as s:
        sub, secret = subscriptions.create(
            s,
            subscriptions.NewSubscription(
                url=receiver.url, event_types=["*"], options={"max_concurrency": 4}
            ),
        )
        sid = sub.id
    receiver.secret = secret
    outbound.subscriptions_changed()
    committed: dict[int, float] = {}
    started = time.monotonic()
    record_s = in_threads(args.events, record(committed))
    want = {str(i) for i in committed}
    deadline = time.monotonic() + 300
    while not want <= receiver.first.keys():
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(want & receiver.first.keys())} of {len(want)} delivered")
        time.sleep(0.02)
    total_s = time.monotonic() - started
    lags = [receiver.first[str(i)] - t for i, t in committed.items()]

    # 4. one event at a time on an idle system: commit -> receiver, against the ledger
    #    transaction alone (the same `events.record`, timed from before it to its commit)
    idle: list[float] = []
    tx: list[float] = []
    for i in range(args.idle):
        before = time.time()
        with session_scope() as s:
            event_id = events.record(s, cids[i % len(cids)], "bench_event", {"idle": i}).id
        done = time.time()
        tx.append(done - before)
        key = str(event_id)
        deadline = time.monotonic() + 30
        while key not in receiver.first:
            if time.monotonic() > deadline:
                raise SystemExit(f"event {event_id} not delivered within 30 s")
            time.sleep(0.001)
        idle.append(receiver.first[key] - done)
    rate = args.events / total_s
    dupes = receiver.hits - len(receiver.first)  # arrivals of an id already seen
    print(f"events: {args.events} over {args.conversations} conversations, 4 recording threads")
    print(f"ledger alone: {ledger_rate:.0f} events/s ({ledger_s:.2f}s)")
    print(f"bare signed POST loop, 4 threads: {bare_rate:.0f} POSTs/s ({bare_s:.2f}s)")
    print(f"ledger while subscribed: {args.events / record_s:.0f} events/s ({record_s:.2f}s)")
    print(f"webhooks end to end: {rate:.0f} deliveries/s ({total_s:.2f}s until the last arrived)")
    p50, p99 = pct(lags, 0.5) * 1000, pct(lags, 0.99) * 1000
    print(f"lag commit -> receiver: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"signatures refused: {receiver.forged}; duplicate deliveries: {max(0, dupes)}")
    i50, i99 = pct(idle, 0.5) * 1000, pct(idle, 0.99) * 1000
    t50 = pct(tx, 0.5) * 1000
    print(f"one event at a time ({args.idle}): lag p50 {i50:.0f} ms, p99 {i99:.0f} ms;")
    print(f"  the ledger transaction itself p50 {t50:.1f} ms")
    print(f"subscription {sid}")
    print(f"ratio_vs_ledger={rate / ledger_rate:.2f}")
    print(f"ratio_vs_bare_post={rate / bare_rate:.2f}")
    print(f"idle_lag_ratio_vs_ledger_tx={pct(idle, 0.5) / pct(tx, 0.5):.1f}")


if __name__ == "__main__":
    main()

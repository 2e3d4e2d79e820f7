"""Ledger → Socket.IO client latency, against a bare Socket.IO emit measured in the same run.

The real path of a worker's event: `events.record` in a PostgreSQL transaction (with the
conversation lock), commit, the relay thread, a write-only Socket.IO Redis manager (what
workers and the scheduler use), Redis pub/sub, the web app's listener on a live werkzeug server,
a python-socketio client in the conversation's room. Baseline: the same write-only manager
emitting a message to the same room directly (no transaction, no ledger, no relay thread).

Printed: p50/p95 latency of each (and of the ledger transaction alone), sequential (one
event, wait for it, next); a burst of events recorded by 4 threads (time until the client has
all of them, events/s); how many `dashboard_refresh` the burst caused (coalesced); and the last
line `ratio=<ledger p50 / direct p50>`.

    .venv/bin/python bench/realtime.py [--events 200] [--burst 400] [--redis-db 13]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import admin, configure, pct  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mina-bench-rt-"))
    name = configure(workdir, args.redis_db, {"MINA_OPERATOR_TOKEN": "bench"})
    admin(f"CREATE DATABASE {name}")
    try:
        run(args)
    finally:
        from mina import db

        db.get_engine().dispose()
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(args: argparse.Namespace) -> None:
    import socketio
    from werkzeug.serving import make_server

    from api import create_app
    from mina import conversations, db, events, realtime
    from mina.settings import get_settings
    from mina_cli import migrate

    settings = get_settings()
    migrate.upgrade(settings.resolved_database_url)
    db.configure(settings.resolved_database_url, settings)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    writer = realtime.build_emitter(settings)  # as in a worker process
    assert writer is not None
    events.relay.set_emitter(writer, dashboard_interval=0.5)

    with db.session_scope() as s:
        conv, token = conversations.create(s, "bench")
        cid = conv.id
    arrived: dict[Any, float] = {}
    refreshes = [0]
    got = threading.Condition()
    client = socketio.Client(reconnection=False)

    @client.on("*")
    def _any(event: str, data: Any = None) -> None:
        now = time.perf_counter()
        with got:
            if event == "dashboard_refresh":
                refreshes[0] += 1
            elif isinstance(data, dict) and "payload" in data:
                arrived[("ledger", data["payload"]["n"])] = now
            elif isinstance(data, dict) and "direct" in data:
                arrived[("direct", data["direct"])] = now
            got.notify_all()

    client.connect(f"http://127.0.0.1:{server.server_port}", transports=["websocket"])
    operators = socketio.Client(reconnection=False)
    operators.on("dashboard_refresh", lambda data: _any("dashboard_refresh", data))
    operators.connect(f"http://127.0.0.1:{server.server_port}", transports=["websocket"])
    assert client.call("join", {"conversation_id": cid, "token": token})["ok"]
    assert operators.call("join", {"room": "operators", "token": "bench"})["ok"]

    def wait(key: Any) -> float:
        with got:
            got.wait_for(lambda: key in arrived, timeout=30)
            return arrived[key]

    room = events.room(cid)
    direct, ledger, commit = [], [], []
    for n in range(args.events):
        t0 = time.perf_counter()
        writer.emit("bench_direct", {"direct": n}, room)
        direct.append(wait(("direct", n)) - t0)
        t0 = time.perf_counter()
        with db.session_scope() as s:
            events.record(s, cid, "bench", {"n": n})
        commit.append(time.perf_counter() - t0)
        ledger.append(wait(("ledger", n)) - t0)

    refreshes[0] = 0
    burst = range(args.events, args.events + args.burst)

    def record_some(ns: range) -> None:
        for n in ns:
            with db.session_scope() as s:
                events.record(s, cid, "bench", {"n": n})

    t0 = time.perf_counter()
    threads = [threading.Thread(target=record_some, args=(burst[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last = max(wait(("ledger", n)) for n in burst)
    burst_s = last - t0
    events.relay.flush(10)
    time.sleep(1.0)  # a trailing refresh
    client.disconnect()
    operators.disconnect()
    server.shutdown()

    def ms(v: float) -> str:
        return f"{v * 1000:.1f} ms"

    print(
        f"direct emit → client  (n={len(direct)}): p50 {ms(pct(direct, 0.5))}  "
        f"p95 {ms(pct(direct, 0.95))}"
    )
    print(
        f"ledger record → client (n={len(ledger)}): p50 {ms(pct(ledger, 0.5))}  "
        f"p95 {ms(pct(ledger, 0.95))}  mean {ms(statistics.mean(ledger))}"
    )
    print(
        f"  of which the transaction (record + commit): p50 {ms(pct(commit, 0.5))}  "
        f"p95 {ms(pct(commit, 0.95))}"
    )
    print(
        f"burst of {args.burst} events from 4 threads: all received in {burst_s:.2f} s "
        f"({args.burst / burst_s:.0f} events/s), {refreshes[0]} dashboard_refresh"
    )
    print(f"ratio={pct(ledger, 0.5) / pct(direct, 0.5):.2f}")


if __name__ == "__main__":
    main()

"""What `pool_pre_ping` costs per checkout, and what it buys after a database restart.

Two engines on one throwaway PostgreSQL database, as mina.db builds them (psycopg 3, a
QueuePool), one with `pool_pre_ping=True` (what Mina runs) and one without. Each runs
`--rounds` x `--transactions` transactions of the worker's shape (check out, BEGIN, one
small statement, COMMIT), from `--threads` threads, the two alternating round by round in the
same run. Printed: milliseconds per transaction for each (median of the rounds), the
difference (the ping's cost per checkout: one `SELECT 1` round trip, SQLAlchemy's psycopg
`do_ping`) and the ratio.

Then the restart: every server connection of the database is terminated
(`pg_terminate_backend`, what a restart or a failover does to a pool), and each engine runs
`--threads` x 2 transactions: how many fail with an error (without the ping the first use of a
stale pooled connection fails, SQLAlchemy then invalidates the whole pool) and how many pass.

    .venv/bin/python bench/pool_ping.py [--transactions 1000] [--rounds 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import create_database, drop_database  # noqa: E402


def _engine(url: str, ping: bool, threads: int) -> Any:
    from sqlalchemy import create_engine

    return create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1),
        pool_size=threads,
        max_overflow=0,
        pool_pre_ping=ping,
    )


def _transactions(engine: Any, n: int, threads: int) -> tuple[float, int]:
    """Seconds for n transactions over `threads` threads; how many failed."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    failed = [0]
    lock = threading.Lock()

    def run(count: int) -> None:
        for _ in range(count):
            try:
                with engine.begin() as conn:
                    conn.execute(text("SELECT status FROM bench_chunk WHERE id = 1"))
            except OperationalError:
                with lock:
                    failed[0] += 1

    workers = [threading.Thread(target=run, args=(n // threads,)) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started, failed[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import os

    import psycopg

    name, url = create_database()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_chunk (id int PRIMARY KEY, status text)")
            conn.execute("INSERT INTO bench_chunk VALUES (1, 'queued')")
        engines = {ping: _engine(url, ping, args.threads) for ping in (True, False)}
        for e in engines.values():
            _transactions(e, args.threads * 20, args.threads)  # pools filled, warmed
        per: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for ping in (True, False) if r % 2 == 0 else (False, True):
                seconds, _ = _transactions(engines[ping], args.transactions, args.threads)
                per[ping].append(seconds / args.transactions * 1000)
        print(
            f"{args.rounds} rounds x {args.transactions} transactions, {args.threads} threads, "
            f"load {os.getloadavg()[0]:.1f}, cores {os.cpu_count()}"
        )
        for ping in (True, False):
            rounds = " ".join(f"{v:.3f}" for v in per[ping])
            print(
                f"  pool_pre_ping={ping!s:5}: {statistics.median(per[ping]):.3f} ms per "
                f"transaction (rounds {rounds})"
            )
        on, off = statistics.median(per[True]), statistics.median(per[False])
        print(f"  the ping per checkout: {on - off:.3f} ms, ratio={on / off:.2f}")
        for ping in (True, False):
            with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
            n = args.threads * 2
            _, failed = _transactions(engines[ping], n, 1)
            print(
                f"  after every server connection was terminated, pool_pre_ping={ping!s:5}: "
                f"{failed} of {n} transactions failed"
            )
        for e in engines.values():
            e.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()

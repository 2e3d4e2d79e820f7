"""Scale-out: 1, 2 and 4 worker processes on Redis and on RabbitMQ, side by side.

The stack of bench/throughput.py (the Procfile's gunicorn web, `dramatiq workers.actors`
processes, a throwaway PostgreSQL database) with the simulated transcriber at a fixed latency
(`--latency`, 0.5 s) and `--threads` threads per process (2, `mina worker`'s default), so the
work is waiting on the provider, as with a remote one: `--conversations` x `--chunks` chunks
uploaded over HTTP at once, timed until every chunk is transcribed. The chunks' speaker features
are left out (`MINA_SPEAKER_MODEL` points nowhere: best effort, diarize would compute them) so
that two cores are not the limit: what scales here is the waiting, the orchestration does not
stop it. The provider cap (`MINA_PROVIDER_CONCURRENCY`, 20) is above 4 x 2 threads.

RabbitMQ runs in a virtual host of its own (made with `rabbitmqctl` and deleted after), with
Redis for group callbacks and the provider cap as `MINA_REDIS_URL` requires.

Printed per broker and worker count: seconds, chunks/s, speedup over one process, and the ideal
(chunks x latency / (processes x threads)). Last line: `ratio=<speedup at 4 on RabbitMQ /
speedup at 4 on Redis>`.

    .venv/bin/python bench/scaleout.py [--workers 1 2 4] [--brokers redis rabbitmq]
        [--conversations 20] [--chunks 4] [--latency 0.5] [--threads 2] [--redis-db 7]

About 2-3 minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import services  # noqa: E402
from bench.ingest import Requests, free_port, make_chunk, start_server  # noqa: E402
from bench.throughput import pipeline  # noqa: E402


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=120, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--brokers", nargs="+", default=["redis", "rabbitmq"])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--redis-db", type=int, default=7)
    args = parser.parse_args()

    import redis

    work = Path(tempfile.mkdtemp(prefix="mina-scaleout-"))
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    vhost = f"mina_bench_{uuid.uuid4().hex[:8]}"
    db_name = services.configure(
        work,
        args.redis_db,
        {
            "MINA_TRANSCRIBER": "simulated",
            "MINA_SIM_LATENCY_SECONDS": str(args.latency),
            "MINA_SPEAKER_MODEL": str(work / "no-speaker-model.npz"),
            "MINA_DB_POOL_SIZE": "10",
        },
    )
    services.admin(f"CREATE DATABASE {db_name}")
    n = args.conversations * args.chunks
    results: dict[str, dict[int, float]] = {}
    made_vhost = False
    try:
        from mina import db
        from mina.settings import get_settings, reset_settings
        from mina_cli import migrate

        url = get_settings().resolved_database_url
        migrate.upgrade(url)
        db.configure(url)
        chunk = make_chunk(work)
        print(
            f"{n} chunks ({args.conversations} conversations x {args.chunks}) at once, simulated "
            f"transcriber {args.latency:g} s, {args.threads} threads per worker process; "
            f"cores={os.cpu_count()}, load={os.getloadavg()[0]:.2f} (a shared machine: others "
            "were running too)",
            flush=True,
        )
        for broker in args.brokers:
            env: dict[str, str] = {"MINA_BROKER_URL": redis_url}
            if broker == "rabbitmq":
                if not made_vhost:
                    rabbitmqctl("add_vhost", vhost)
                    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
                    made_vhost = True
                env = {
                    "MINA_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                    "MINA_REDIS_URL": redis_url,
                }
            os.environ.update(env)
            reset_settings()
            redis.Redis.from_url(redis_url).flushdb()
            port = free_port()
            server = start_server(dict(os.environ), port, work / f"web-{broker}.log")
            results[broker] = {}
            try:
                for count in args.workers:
                    worker = services.start_worker(
                        work / f"worker-{broker}-{count}.log",
                        processes=count,
                        threads=args.threads,
                    )
                    try:
                        req = Requests(chunk, port)
                        req.new_conversations(args.conversations, f"{broker}{count}")
                        seconds, _ = pipeline(req, port, args.clients, args.chunks, broker)
                    finally:
                        services.stop_worker(worker)
                    results[broker][count] = seconds
                    ideal = n * args.latency / (count * args.threads)
                    first = results[broker][args.workers[0]]
                    print(
                        f"{broker:9} {count} process(es): {seconds:6.2f} s  {n / seconds:6.1f} "
                        f"chunks/s  speedup {first / seconds:4.2f}  (ideal {ideal:5.2f} s, "
                        f"speedup {args.workers[0] and count / args.workers[0]:.0f})",
                        flush=True,
                    )
            finally:
                server.terminate()
                server.wait(timeout=30)
        if len(results) == 2:
            print("\nside by side (speedup over one process):")
            print(f"{'processes':>9} " + " ".join(f"{b:>9}" for b in results))
            for count in args.workers:
                row = " ".join(
                    f"{results[b][args.workers[0]] / results[b][count]:9.2f}" for b in results
                )
                print(f"{count:9d} {row}")
        last = args.workers[-1]
        speed = {
            b: results[b][args.workers[0]] / results[b][last] for b in results if last in results[b]
        }
        if "redis" in speed and "rabbitmq" in speed:
            print(f"ratio={speed['rabbitmq'] / speed['redis']:.2f}")
    finally:
        from mina import db as _db

        try:
            _db.get_engine().dispose()
        finally:
            redis.Redis.from_url(redis_url).flushdb()
            services.admin(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
            if made_vhost:
                rabbitmqctl("delete_vhost", vhost)


if __name__ == "__main__":
    main()

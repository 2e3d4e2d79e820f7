"""Loaded at start by the Python processes bench/throughput.py and bench/ingest.py
(--breakdown) start (this directory is put on their PYTHONPATH; nothing else loads it): counts
and times every SQL statement, commit and Redis call of the process, the container probe and
local blob writes, and writes the totals to `$MINA_BENCH_STATS_DIR/<pid>.json` every 0.2 s, so
a bench can tell database, broker, probe and storage time per chunk from the rest."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time

_DIR = os.environ.get("MINA_BENCH_STATS_DIR")


def _install() -> None:
    import redis.client
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    totals = {"sql": 0, "sql_s": 0.0, "commits": 0, "commit_s": 0.0, "redis": 0, "redis_s": 0.0}
    lock = threading.Lock()
    local = threading.local()

    def add(calls: str, seconds: str, elapsed: float) -> None:
        with lock:
            totals[calls] += 1
            totals[seconds] += elapsed

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(*_: object) -> None:
        local.started = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(*_: object) -> None:
        add("sql", "sql_s", time.perf_counter() - getattr(local, "started", time.perf_counter()))

    def timed(method, calls: str, seconds: str):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                add(calls, seconds, time.perf_counter() - started)

        return wrapper

    # The commit's round trip (the Engine's commit event fires before it, with no event after).
    from sqlalchemy.engine.default import DefaultDialect

    DefaultDialect.do_commit = timed(DefaultDialect.do_commit, "commits", "commit_s")  # type: ignore[method-assign]
    redis.client.Redis.execute_command = timed(  # type: ignore[method-assign]
        redis.client.Redis.execute_command, "redis", "redis_s"
    )
    redis.client.Pipeline.execute = timed(redis.client.Pipeline.execute, "redis", "redis_s")  # type: ignore[method-assign]

    # The upload's own steps (bench/ingest.py --breakdown): the container probe and the blob
    # write. Patched where the callers look them up (a module attribute, a method).
    import importlib

    for calls, seconds, module, owner, name in (
        ("probe", "probe_s", "mina.probe", None, "probe"),
        ("store", "store_s", "mina.storage.local", "LocalStorage", "put_file"),
    ):
        totals.setdefault(calls, 0)
        totals.setdefault(seconds, 0.0)
        target = importlib.import_module(module)
        if owner is not None:
            target = getattr(target, owner)
        setattr(target, name, timed(getattr(target, name), calls, seconds))

    def dump() -> None:
        while True:
            time.sleep(0.2)
            with lock:
                data = dict(totals, argv=" ".join(sys.argv)[:200])
            path = os.path.join(_DIR or ".", f"{os.getpid()}.json")
            with open(path + ".tmp", "w") as fh:
                json.dump(data, fh)
            os.replace(path + ".tmp", path)

    def start() -> None:
        with lock:
            for key in totals:
                totals[key] = 0 if isinstance(totals[key], int) else 0.0
        threading.Thread(target=dump, name="bench-stats", daemon=True).start()

    os.register_at_fork(after_in_child=start)
    start()


if _DIR:
    with contextlib.suppress(ImportError):  # a Python without Mina's dependencies: no counts
        _install()

"""What the benches that run the real services share: a throwaway `MINA_*` environment on
PostgreSQL and Redis, the admin connection that creates and drops its database, polling the
database, and percentiles."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def configure(workdir: Path, redis_db: int, extra: dict[str, str] | None = None) -> str:
    """MINA_* for this process and the workers it starts (every other MINA_* removed);
    returns the name of the database to create."""
    for key in [k for k in os.environ if k.startswith("MINA_")]:
        del os.environ[key]
    name = f"mina_bench_{uuid.uuid4().hex[:10]}"
    os.environ.update(
        {
            "MINA_DATA_DIR": str(workdir / "data"),
            "MINA_STORAGE_URL": str(workdir / "blobs"),
            "MINA_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
            "MINA_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
            **(extra or {}),
        }
    )
    return name


def admin(sql: str) -> None:
    """One statement on the server's `postgres` database (CREATE/DROP DATABASE)."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def scalar(query: Any) -> Any:
    from mina.db import session_scope

    with session_scope() as s:
        return s.scalar(query)


def wait(
    predicate: Callable[[], Any], what: str, timeout: float = 300.0, poll: float = 0.05
) -> Any:
    """The predicate's first true value; exits the bench if it does not come in time."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(poll)
    return value


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def start_worker(
    log_path: Path,
    env: dict[str, str] | None = None,
    *,
    modules: tuple[str, ...] = ("workers.actors",),
    processes: int = 1,
    threads: int = 8,
    queues: tuple[str, ...] = (),
) -> Any:
    """`dramatiq <modules>` as `mina worker` starts it, in a session of its own (so the whole
    group can be stopped); returns once it logged that it is ready."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "dramatiq", *modules, "--processes", str(processes)]
    cmd += ["--threads", str(threads)]
    if queues:
        cmd += ["--queues", *queues]
    # `mina worker` (the Procfile's) has idle consumers poll every 100 ms, not back off to 1 s.
    poll = {"dramatiq_worker_timeout": os.environ.get("dramatiq_worker_timeout", "100")}  # noqa: SIM112
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **poll, **(env or {})},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while log_path.read_text(errors="replace").count("is ready for action") < processes:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def stop_worker(proc: Any) -> None:
    """SIGTERM to the worker's process group, SIGKILL after 30 s."""
    import signal
    import subprocess

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

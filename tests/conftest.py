"""Test environment: real PostgreSQL and Redis (services profile) or SQLite + StubBroker
(embedded profile, `MINA_TEST_PROFILE=embedded`).

The environment is set here, before anything imports `mina.settings` or `workers.broker`, because
the broker is built once per process from `MINA_*`. A service that cannot be reached fails the
run loudly; nothing is skipped for it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

PROFILE = os.environ.get("MINA_TEST_PROFILE", "services")
EMBEDDED = PROFILE == "embedded"
OPERATOR_TOKEN = "test-operator-token"


def _claim_redis_db() -> int:
    """A Redis database of its own for this run: tests flush theirs and start workers on it,
    so two runs on one machine (CI beside a developer's run) must not share one. Claimed in
    db 0 by a key holding this process's pid; a claim whose process is gone is taken over."""
    given = os.environ.get("MINA_TEST_REDIS_DB")
    if given:
        return int(given)
    if EMBEDDED:
        return 9  # no Redis in the embedded profile
    import atexit

    import redis

    claims = redis.Redis(host="127.0.0.1", port=6379, db=0)
    me = str(os.getpid())
    for db in range(1, 16):
        key = f"mina:test-db:{db}"
        if not claims.set(key, me, nx=True, ex=6 * 3600):
            holder = claims.get(key)
            try:
                os.kill(int(holder or 0), 0)
                continue  # still running
            except (ProcessLookupError, ValueError):
                claims.set(key, me, ex=6 * 3600)  # its run died without letting go
            except PermissionError:
                continue
        atexit.register(lambda key=key: claims.delete(key))
        os.environ["MINA_TEST_REDIS_DB"] = str(db)  # the same one for subprocesses of this run
        return db
    raise RuntimeError("every Redis database 1-15 is claimed by a running test session")


TEST_REDIS_DB = _claim_redis_db()
REDIS_URL = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"

_ROOT = Path(tempfile.mkdtemp(prefix="mina-tests-"))


def _create_database() -> str:
    """A throwaway PostgreSQL database for this run (or the one .ci/run made)."""
    given = os.environ.get("MINA_TEST_DATABASE_URL")
    if given:
        return given
    import psycopg

    name = f"mina_test_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    os.environ["MINA_TEST_DROP_DATABASE"] = name
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _base_env() -> dict[str, str]:
    env = {
        "MINA_DATA_DIR": str(_ROOT / "data"),
        "MINA_STORAGE_URL": str(_ROOT / "blobs"),
        "MINA_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "MINA_TRANSCRIBER": "local",
        "MINA_WORKER_THREADS": "2",
        "MINA_RETRY_MIN_BACKOFF_MS": "100",
        "MINA_RETRY_MAX_BACKOFF_MS": "1000",
    }
    if EMBEDDED:
        env["MINA_DATABASE_URL"] = f"sqlite:///{_ROOT / 'data' / 'mina.db'}"
    else:
        env["MINA_DATABASE_URL"] = _create_database()
        env["MINA_BROKER_URL"] = REDIS_URL
    return env


for _key in [k for k in os.environ if k.startswith("MINA_") and not k.startswith("MINA_TEST")]:
    del os.environ[_key]
BASE_ENV = _base_env()
os.environ.update(BASE_ENV)

pytest_plugins = ["tests.fixtures.s3", "tests.fixtures.stack"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the embedded profile, tests marked `services_only` are deselected, never skipped."""
    if not EMBEDDED:
        return
    dropped = [i for i in items if i.get_closest_marker("services_only")]
    if dropped:
        items[:] = [i for i in items if not i.get_closest_marker("services_only")]
        config.hook.pytest_deselected(items=dropped)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    name = os.environ.get("MINA_TEST_DROP_DATABASE")
    if not name:
        return
    from mina import db

    db.get_engine().dispose()
    import psycopg

    conn = psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()

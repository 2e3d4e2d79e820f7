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
TEST_REDIS_DB = int(os.environ.get("MINA_TEST_REDIS_DB", "9"))
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

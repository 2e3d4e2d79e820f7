"""Every PostgreSQL URL form a host hands out works: `mina db upgrade`, then a query.

`postgres://` and `postgresql://` mean psycopg 3 (the driver Mina installs); an explicit
`postgresql+DRIVER://` is used as given, and a driver that is not installed is a clear
configuration error, not a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from mina import db

ROOT = Path(__file__).resolve().parents[2]


def admin(sql: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(sql)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"mina_urls_{uuid.uuid4().hex[:10]}"
    admin(f"CREATE DATABASE {name}")
    yield name
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def mina(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
    env["MINA_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "mina_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_mina_db_upgrade_and_a_query_with_each_url_form(database: str, scheme: str) -> None:
    url = f"{scheme}://postgres@127.0.0.1:5432/{database}"
    done = mina(url, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "database at head" in done.stderr
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM conversation")).scalar_one() == 0
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_bare_schemes_mean_psycopg_and_explicit_drivers_are_kept() -> None:
    assert db.engine_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert db.engine_url("postgresql://h/d?sslmode=require") == (
        "postgresql+psycopg://h/d?sslmode=require"
    )
    assert db.engine_url("postgresql+psycopg2://h/d") == "postgresql+psycopg2://h/d"
    assert db.engine_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_a_driver_that_is_not_installed_is_a_clear_configuration_error(database: str) -> None:
    done = mina(f"postgresql+nosuchdriver://postgres:secret@127.0.0.1/{database}", "db", "upgrade")
    assert done.returncode == 2
    assert (
        "mina: configuration error: MINA_DATABASE_URL: no driver for postgresql+nosuchdriver://"
        in (done.stderr)
    )
    assert "Traceback" not in done.stderr and "secret" not in done.stderr

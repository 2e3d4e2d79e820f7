"""The engine and `session_scope()`: services take a session, callers own the transaction.

PostgreSQL URLs in any form a host hands out (`postgres://`, `postgresql://`) use psycopg 3,
the driver Mina installs; an explicit `postgresql+DRIVER://` is kept as given. PostgreSQL gets a
sized connection pool. SQLite (the embedded default) gets WAL, a busy timeout
and `BEGIN IMMEDIATE`, so concurrent writers queue for the write lock instead of failing halfway
through a transaction with "database is locked".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mina.errors import ConfigurationError
from mina.settings import Settings, get_settings

log = logging.getLogger(__name__)

__all__ = [
    "SQLAlchemyError",
    "after_commit_hooks",
    "configure",
    "engine_url",
    "get_engine",
    "ping",
    "session_scope",
    "utcnow",
]

_lock = threading.Lock()
_engine: Engine | None = None
_factory: sessionmaker[Session] | None = None

#: Called with the committed session (closed for writes) after every successful commit.
after_commit_hooks: list[Callable[[Session], None]] = []


def utcnow() -> datetime:
    """Naive UTC: the one clock every row uses (SQLite keeps no time zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


#: What a bare PostgreSQL scheme means: psycopg 3, chosen here rather than left to whichever
#: default the installed SQLAlchemy has (psycopg2 before 2.1, psycopg from 2.1).
POSTGRES_DRIVER = "postgresql+psycopg"


def engine_url(url: str) -> str:
    """`postgres://…` and `postgresql://…` as `postgresql+psycopg://…`; anything else as is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return f"{POSTGRES_DRIVER}://{rest}"
    return url


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    url = engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=20
        )
        _configure_sqlite(engine)
        return engine
    try:
        return create_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            pool_pre_ping=True,
        )
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        scheme = url.partition("://")[0]
        raise ConfigurationError(
            f"MINA_DATABASE_URL: no driver for {scheme}:// ({exc}); use postgresql://… "
            "(psycopg 3, installed with Mina) or install the driver you name"
        ) from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below), not the sqlite3 module.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def configure(url: str | None = None, settings: Settings | None = None) -> Engine:
    """(Re)build the process's engine; tests and `mina` commands call it with their URL."""
    global _engine, _factory
    settings = settings or get_settings()
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = make_engine(url or settings.resolved_database_url, settings)
        _factory = sessionmaker(bind=_engine, expire_on_commit=False)
        return _engine


def get_engine() -> Engine:
    if _engine is None:
        return configure()
    return _engine


def _session_factory() -> sessionmaker[Session]:
    if _factory is None:
        configure()
    assert _factory is not None
    return _factory


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error, always close."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    for hook in after_commit_hooks:
        hook(session)


def ping() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))

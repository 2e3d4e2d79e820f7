"""Leader election: one scheduler acts, the others wait and take over when it dies.

- PostgreSQL: a session-level advisory lock on a connection of its own. The server drops it the
  moment the holder's connection closes (a killed process included).
- SQLite with Redis: a Redis key with an expiry, set only if absent and renewed by its holder
  (compare-and-expire), so a dead holder's lock lapses after `scheduler_lock_ttl_seconds`.
- SQLite without Redis (embedded): an exclusive `flock` on a file in the data directory; the
  kernel releases it when the process dies.

Leadership is an economy, not the safety net: every job is idempotent and picks rows with
conditional updates, so two instances briefly acting at once (a paused leader whose Redis lock
lapsed) still change each thing once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import IO, Protocol

import redis
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from mina.settings import Settings

log = logging.getLogger(__name__)

# pg_try_advisory_lock(int4, int4): "MINA" and the scheduler's slot.
PG_CLASS, PG_OBJECT = 0x4D494E41, 1
REDIS_KEY = "mina:scheduler:leader"
FILE_NAME = "scheduler.lock"


def identity() -> str:
    return f"mina-scheduler {socket.gethostname()} pid {os.getpid()}"


class LeaderLock(Protocol):
    kind: str

    def acquire(self) -> bool:
        """Take the lock if it is free (never blocks); True if this process holds it now."""

    def still_held(self) -> bool:
        """Renew or verify the lock; False when it was lost (then stop acting)."""

    def release(self) -> None:
        """Give the lock up (idempotent)."""

    def holder(self) -> str | None:
        """Who holds the lock now, as far as can be seen from here."""


class PostgresLock:
    kind = "postgres advisory lock"

    def __init__(self, url: str) -> None:
        self._engine = create_engine(
            url, poolclass=NullPool, connect_args={"application_name": identity()[:63]}
        )
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:c, :o)"), {"c": PG_CLASS, "o": PG_OBJECT}
            ).scalar()
        except SQLAlchemyError as exc:
            log.warning("leader lock: database unreachable: %s", str(exc).splitlines()[0])
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid = :c AND objid = :o AND objsubid = 2"
                ),
                {"c": PG_CLASS, "o": PG_OBJECT},
            ).scalar()
        except SQLAlchemyError as exc:
            log.error("leader lock: connection lost: %s", str(exc).splitlines()[0])
            self._drop()
            return False
        return bool(held)

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:c, :o)"), {"c": PG_CLASS, "o": PG_OBJECT}
            )
        except SQLAlchemyError as exc:  # closing the connection releases it anyway
            log.info("leader lock: unlock failed (%s); closing the connection", exc)
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None

    def holder(self) -> str | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.classid = :c AND l.objid = :o AND l.objsubid = 2 "
                    # advisory locks are per database: not another database's scheduler
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"c": PG_CLASS, "o": PG_OBJECT},
            ).first()
        if row is None:
            return None
        return f"{row[0]} (client {row[1] or 'local'}, backend pid {row[2]})"


# KEYS[1] = lock key, ARGV[1] = token, ARGV[2] = ttl in ms
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501


class RedisLock:
    kind = "redis lock"

    def __init__(self, url: str, ttl_seconds: float) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5)
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))
        self._token = f"{identity()} {uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        try:
            if self._redis.set(REDIS_KEY, self._token, nx=True, px=self._ttl_ms):
                return True
            return self.still_held()
        except redis.RedisError as exc:
            log.warning("leader lock: redis unreachable: %s", exc)
            return False

    def still_held(self) -> bool:
        try:
            return bool(self._redis.eval(_RENEW, 1, REDIS_KEY, self._token, self._ttl_ms))
        except redis.RedisError as exc:
            log.error("leader lock: redis unreachable, stepping down: %s", exc)
            return False

    def release(self) -> None:
        try:
            self._redis.eval(_RELEASE, 1, REDIS_KEY, self._token)
        except redis.RedisError as exc:  # it lapses after the ttl anyway
            log.info("leader lock: release failed (%s); it expires by itself", exc)

    def holder(self) -> str | None:
        value = self._redis.get(REDIS_KEY)
        return value.decode() if isinstance(value, bytes) else value


class FileLock:
    kind = "file lock"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> bool:
        if self._fh is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fh = self._path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(identity() + "\n")
        fh.flush()
        self._fh = fh
        return True

    def still_held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None

    def holder(self) -> str | None:
        if self._fh is not None:
            return identity()
        if not self._path.exists():
            return None
        with self._path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                return fh.read().strip() or "another process"
            return None  # we could take it: nobody holds it


def build_lock(settings: Settings) -> LeaderLock:
    url = settings.resolved_database_url
    if url.startswith("postgresql"):
        return PostgresLock(url)
    redis_url = settings.resolved_redis_url
    if redis_url:
        return RedisLock(redis_url, settings.scheduler_lock_ttl_seconds)
    return FileLock(Path(settings.data_dir) / FILE_NAME)

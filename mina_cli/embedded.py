"""The embedded runtime: Dramatiq worker threads on the StubBroker inside this process.

Only one embedded process may own a data directory at a time (a lock file), so on start it can
safely take back everything a previous run left half-done: chunks `processing` go back to
`queued`, tasks `running` back to `pending`, and the repair jobs queue them again.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import IO

import dramatiq

from mina.errors import ConfigurationError
from mina.settings import Settings

log = logging.getLogger(__name__)


class Embedded:
    def __init__(self, settings: Settings) -> None:
        if not settings.embedded:
            raise ConfigurationError("the embedded runtime needs MINA_BROKER_URL unset")
        from workers import actors  # noqa: F401 - registers the actors
        from workers.broker import broker

        self.settings = settings
        self.broker = broker
        self.worker = dramatiq.Worker(
            broker, worker_threads=max(1, settings.worker_threads + 4), worker_timeout=100
        )
        self._lock_file: IO[str] | None = None

    def lock(self) -> None:
        path = Path(self.settings.data_dir) / "embedded.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConfigurationError(
                f"another embedded mina is using {self.settings.data_dir}; stop it or set "
                "MINA_DATA_DIR to another directory"
            ) from None
        self._lock_file = fh

    def start(self) -> None:
        self.lock()
        self.broker.emit_after("process_boot")  # starts the TimeLimit timer (DESIGN §10)
        self.worker.start()
        log.info("embedded worker started with %d threads", self.worker.worker_threads)

    def stop(self, timeout_ms: int = 10_000) -> None:
        # Consumers told to stop with the worker threads, not after them: each thread notices
        # within its 100 ms poll, so both sets end in one poll instead of two. Dramatiq keeps
        # consumers up while workers drain only to send broker heartbeats, which the StubBroker
        # has none of; a message an in-flight task sends meanwhile stays queued in memory and
        # its row is resumed from the database at the next start, as after any stop.
        for consumer in self.worker.consumers.values():
            consumer.stop()
        self.worker.stop(timeout=timeout_ms)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

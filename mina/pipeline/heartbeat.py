"""Heartbeats: a worker renews the short lease of the chunk or task it is working on.

A chunk's claim (and a post-processing task's start) takes a lease of
`heartbeat_timeout_seconds`. While the work runs, a daemon thread renews it every
`heartbeat_seconds`, never past the long cap (`lease_seconds` after the claim for a chunk, the
time limit for a task) and never shortening a longer lease set on purpose (a chunk split into
pieces, a job waiting at an async provider). A worker that dies (SIGKILL, out of memory, a lost
machine) stops renewing, so the scheduler takes its work back after the timeout instead of the
cap; a worker that hangs alive is still bounded by the cap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from mina.settings import Settings

log = logging.getLogger(__name__)

#: Renew one lease; False once the work is no longer the caller's (stop beating).
Renew = Callable[[], bool]


def first_lease(now: datetime, cap_seconds: float, settings: Settings) -> datetime:
    """The lease a claim takes: the heartbeat timeout, or the whole cap without heartbeats."""
    if settings.heartbeat_seconds <= 0:
        return now + timedelta(seconds=cap_seconds)
    return now + timedelta(seconds=min(settings.heartbeat_timeout_seconds, cap_seconds))


def renewed_lease(
    now: datetime, started: datetime, cap_seconds: float, settings: Settings
) -> datetime:
    """The lease a heartbeat at `now` gives: the timeout from now, never past the cap."""
    return min(
        now + timedelta(seconds=settings.heartbeat_timeout_seconds),
        started + timedelta(seconds=cap_seconds),
    )


@contextmanager
def beating(renew: Renew, settings: Settings, what: str) -> Iterator[None]:
    """Renew a lease every `heartbeat_seconds` while the block runs (nothing when 0).

    A renewal that fails (the database is away for a moment) is logged and the next one tries
    again: the lease only lapses if the worker cannot renew for the whole timeout.
    """
    interval = settings.heartbeat_seconds
    if interval <= 0:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                if not renew():
                    return
            except SQLAlchemyError as exc:
                log.warning("%s: heartbeat not recorded, next in %gs: %s", what, interval, exc)

    thread = threading.Thread(target=loop, name=f"heartbeat {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        # Not joined: a renewal still in flight changes only a row that is still this worker's
        # (every renewal is conditional on the claim), so nothing waits for it.
        stop.set()

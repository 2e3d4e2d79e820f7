"""The relay: emits committed ledger events from a thread of this process, then stamps them.

`publish()` is called after a commit with the events' messages and returns at once: the caller's
transaction never waits on Socket.IO or Redis. A daemon thread emits each message to the room
`conversation:{id}` at once, stamps `emitted_at` with one UPDATE for what went out in the last
`stamp_interval` seconds (0.25 s: one transaction for many chunks under load, not one per
event; the scheduler's relay job only takes events unstamped for 5 s), and sends the operators'
`dashboard_refresh`, coalesced: at most one per `dashboard_interval` seconds, the first change at
once and the rest of a window merged into one trailing refresh, so the last change is never
lost. What fails to go out keeps `emitted_at` NULL and the scheduler's relay job sends it later.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from mina.db import session_scope, utcnow
from mina.errors import TransientError
from mina.models import Event

log = logging.getLogger(__name__)

OPERATORS_ROOM = "operators"
_STAMP_BATCH = 500  # stamped at once past this many, whatever the interval
Message = dict[str, Any]


class Emitter(Protocol):
    """Sends one Socket.IO event to a room; raises `TransientError` if it could not."""

    def emit(self, event: str, data: dict[str, Any], room: str) -> None: ...


def room(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


class Relay:
    def __init__(self, dashboard_interval: float = 0.5, stamp_interval: float = 0.25) -> None:
        self._emitter: Emitter | None = None
        self._interval = dashboard_interval
        self._stamp_interval = stamp_interval
        self._reset()
        self._exit_hook = False
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Fresh state (at start, and in a forked child: the parent's thread did not follow)."""
        self._cond = threading.Condition()
        self._pending: list[Message] = []
        self._dirty: set[str] = set()
        self._last_refresh = float("-inf")
        self._unstamped: list[int] = []  # emitted, `emitted_at` not written yet
        self._last_stamp = float("-inf")
        self._flushing = 0
        self._busy = False
        self._thread: threading.Thread | None = None

    def set_emitter(
        self, emitter: Emitter | None, *, dashboard_interval: float | None = None
    ) -> None:
        with self._cond:
            self._emitter = emitter
            if dashboard_interval is not None:
                self._interval = dashboard_interval
            if emitter is None:
                # Nothing is sent without an emitter: what was published stays unstamped in the
                # ledger for the scheduler, and no refresh for old changes goes to a later one.
                self._pending, self._dirty = [], set()
                self._cond.notify_all()
        if emitter is None:
            self._stamp_now()  # what went out is stamped, so the scheduler does not resend it
        if emitter is not None:
            self._ensure_thread()

    @property
    def active(self) -> bool:
        return self._emitter is not None

    @property
    def emitter(self) -> Emitter | None:
        return self._emitter

    def publish(self, messages: Sequence[Message]) -> None:
        """Hand committed events to the thread; never blocks, never raises."""
        if self._emitter is None or not messages:
            return
        self._ensure_thread()
        with self._cond:
            self._pending.extend(messages)
            self._cond.notify_all()

    def emit_now(self, messages: Sequence[Message]) -> list[int]:
        """Emit in the caller's thread (the scheduler's catch-up); returns the ids that went out.

        The caller stamps them in its own transaction.
        """
        emitter = self._emitter
        if emitter is None:
            return []
        sent = _emit_all(emitter, messages)
        self.changed(m["conversation_id"] for m in messages if m["conversation_id"])
        return [m["id"] for m in sent]

    def changed(self, conversation_ids: Iterable[str]) -> None:
        """Note conversations that changed: the next coalesced `dashboard_refresh` names them."""
        ids = set(conversation_ids)
        if not ids or self._emitter is None:
            return
        self._ensure_thread()
        with self._cond:
            self._dirty |= ids
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything published so far went out (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1  # stamps at once, without waiting for the interval
            self._cond.notify_all()
            try:
                while self._pending or self._busy or self._dirty or self._unstamped:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None:
                        return False
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return True

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="mina-relay", daemon=True)
            self._thread.start()
            if not self._exit_hook:
                atexit.register(self.flush, 2.0)
                self._exit_hook = True

    def _due(self) -> bool:
        return bool(self._dirty) and time.monotonic() >= self._last_refresh + self._interval

    def _stamp_due(self) -> bool:
        if not self._unstamped:
            return False
        if self._flushing or len(self._unstamped) >= _STAMP_BATCH:
            return True
        return time.monotonic() >= self._last_stamp + self._stamp_interval

    def _wait_seconds(self) -> float | None:
        """Until the next refresh or stamp is due; None: until something is published."""
        now, waits = time.monotonic(), []
        if self._dirty:
            waits.append(self._last_refresh + self._interval - now)
        if self._unstamped:
            waits.append(self._last_stamp + self._stamp_interval - now)
        return max(0.0, min(waits)) if waits else None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._due() and not self._stamp_due():
                    self._cond.wait(self._wait_seconds())
                batch, self._pending = self._pending, []
                self._busy = True
            try:
                self._step(batch)
            except Exception:  # the one boundary: the thread must outlive any one bad batch;
                # what it did not stamp stays in the ledger for the scheduler's relay job.
                log.exception("relay: batch of %d event(s) not emitted", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _step(self, batch: list[Message]) -> None:
        emitter = self._emitter
        if emitter is not None and batch:
            sent = _emit_all(emitter, batch)
            with self._cond:
                self._unstamped += [m["id"] for m in sent]
                self._dirty |= {m["conversation_id"] for m in batch if m["conversation_id"]}
        with self._cond:
            stamp = self._stamp_due()
        if stamp:
            self._stamp_now()
        if emitter is None:
            return
        with self._cond:
            if not self._due():
                return
            ids, self._dirty = sorted(self._dirty), set()
            self._last_refresh = time.monotonic()
        try:
            emitter.emit("dashboard_refresh", {"conversation_ids": ids}, OPERATORS_ROOM)
        except TransientError as exc:
            log.warning("relay: dashboard_refresh for %d conversation(s) lost: %s", len(ids), exc)

    def _stamp_now(self) -> None:
        with self._cond:
            ids, self._unstamped = self._unstamped, []
            self._last_stamp = time.monotonic()
        _stamp(ids)


def _emit_all(emitter: Emitter, messages: Sequence[Message]) -> list[Message]:
    """Emit in order; stop at the first failure (the transport is down) and leave the rest."""
    sent: list[Message] = []
    for m in messages:
        try:
            if m["conversation_id"]:  # an event of no conversation has no room: nothing to send
                emitter.emit(m["type"], m, room(m["conversation_id"]))
        except TransientError as exc:
            log.warning(
                "conversation %s: event %s not emitted, %d left for the scheduler: %s",
                m["conversation_id"],
                m["id"],
                len(messages) - len(sent),
                exc,
            )
            break
        sent.append(m)
    return sent


def _stamp(ids: list[int]) -> None:
    if not ids:
        return
    try:
        with session_scope() as session:
            session.execute(
                update(Event)
                .where(Event.id.in_(ids))
                .values(emitted_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    except SQLAlchemyError as exc:  # emitted but not stamped: the scheduler emits them again
        log.warning("relay: %d emitted event(s) not stamped: %s", len(ids), exc)

"""The event ledger: written with the state change it reports, emitted after commit.

`record()` adds an `event` row to the caller's session; the ids are kept in `session.info` and,
once the transaction commits, `session_scope` hands them to the process's emitter (the relay),
which emits each to `conversation:{id}` and stamps `emitted_at`. Whatever is left unstamped (a
crash between commit and emit, no emitter in this process) the scheduler's relay job emits later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mina.db import after_commit_hooks
from mina.models import Event

log = logging.getLogger(__name__)

_INFO_KEY = "mina_event_ids"


class Emitter(Protocol):
    def emit(self, event: str, data: dict[str, Any], room: str) -> None: ...


def record(
    session: Session, conversation_id: str | None, type_: str, payload: dict[str, Any] | None = None
) -> Event:
    ev = Event(conversation_id=conversation_id, type=type_, payload=payload or {})
    session.add(ev)
    session.flush()
    session.info.setdefault(_INFO_KEY, []).append(ev.id)
    return ev


def pending_ids(session: Session) -> list[int]:
    return list(session.info.pop(_INFO_KEY, []))


def as_message(ev: Event) -> dict[str, Any]:
    return {
        "id": ev.id,
        "type": ev.type,
        "conversation_id": ev.conversation_id,
        "payload": ev.payload,
        "created_at": ev.created_at.isoformat() + "Z",
    }


def replay(
    session: Session, conversation_id: str, after: int = 0, limit: int = 1000
) -> list[Event]:
    q = (
        select(Event)
        .where(Event.conversation_id == conversation_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(session.scalars(q))


def room(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


class Relay:
    """Emits ledger events through the process's emitter and stamps them emitted."""

    def __init__(self) -> None:
        self._emitter: Emitter | None = None
        self._lock = threading.Lock()

    def set_emitter(self, emitter: Emitter | None) -> None:
        self._emitter = emitter

    @property
    def active(self) -> bool:
        return self._emitter is not None

    def emit_events(self, session: Session, events: Sequence[Event], now: datetime) -> int:
        emitter = self._emitter
        if emitter is None or not events:
            return 0
        with self._lock:
            for ev in events:
                if ev.conversation_id:
                    emitter.emit(ev.type, as_message(ev), room(ev.conversation_id))
            emitter.emit(
                "dashboard_refresh",
                {
                    "conversation_ids": sorted(
                        {e.conversation_id for e in events if e.conversation_id}
                    )
                },
                "operators",
            )
        session.execute(
            update(Event).where(Event.id.in_([e.id for e in events])).values(emitted_at=now)
        )
        return len(events)


relay = Relay()


def _publish_after_commit(committed: Session) -> None:
    ids = pending_ids(committed)
    if not ids or not relay.active:
        return
    from mina.db import session_scope, utcnow

    try:
        with session_scope() as session:
            events = list(
                session.scalars(select(Event).where(Event.id.in_(ids)).order_by(Event.id))
            )
            relay.emit_events(session, events, utcnow())
    except (OSError, ConnectionError, SQLAlchemyError) as exc:
        # Never fail the caller after its commit: the scheduler's relay emits these later.
        log.warning("relay of %d events deferred: %s", len(ids), exc)


def emit_unemitted(session: Session, older_than: datetime, limit: int = 500) -> int:
    """The scheduler's relay job: emit what no process emitted after its commit."""
    q = (
        select(Event)
        .where(Event.emitted_at.is_(None), Event.created_at <= older_than)
        .order_by(Event.id)
        .limit(limit)
    )
    from mina.db import utcnow

    return relay.emit_events(session, list(session.scalars(q)), utcnow())


after_commit_hooks.append(_publish_after_commit)

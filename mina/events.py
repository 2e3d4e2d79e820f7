"""The event ledger: written with the state change it reports, emitted after commit.

`record()` adds an `event` row to the caller's session and keeps its message in `session.info`;
once the transaction commits, `session_scope` hands the messages to the process's relay
(`mina.relay`), which emits each to `conversation:{id}` and stamps `emitted_at`. Whatever is left
unstamped (a crash between commit and emit, Redis down, no emitter in this process) the
scheduler's relay job emits later (`emit_unemitted`). Delivery is at least once: clients dedupe
by id (docs/realtime.md).

Ids within one conversation are allocated in commit order: `record()` first takes the
conversation row's lock (`FOR NO KEY UPDATE`, the lock an UPDATE of the row takes; nearly every
transaction that records an event updates the row anyway), holds it to commit, and only then
inserts. Without it two transactions could commit ids 11 then 10, and a reader that had seen 11
and asks for `id > 11` (a rejoin, an SSE poll, `GET …/events`) would never get 10. The lock is
taken after any row locks the caller already holds on chunks or tasks, and no transaction takes
a chunk or task lock while holding the conversation's that another one could hold first: see
docs/realtime.md §5.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mina.db import after_commit_hooks, utcnow
from mina.models import Conversation, Event
from mina.relay import Emitter, Message, Relay, room

__all__ = [
    "Emitter",
    "Relay",
    "as_message",
    "emit_unemitted",
    "lock",
    "record",
    "relay",
    "replay",
    "replay_lookback",
    "room",
    "watch",
]

log = logging.getLogger(__name__)

_MESSAGES = "mina_event_messages"
_LOCKS = "mina_event_locks"

#: This process's relay; each process sets its emitter (`mina.realtime`).
relay = Relay()

Listener = Callable[[Sequence[Message]], None]
#: In-process observers of committed events (e.g. `mina process`'s progress bars): called in
#: the committing thread after the relay got the messages, so they must be quick.
_listeners: list[Listener] = []


def watch(listener: Listener) -> Callable[[], None]:
    """Call `listener` with the messages of every transaction of this process that commits
    events, until the returned function is called. A listener that raises is logged, never
    the committing caller's problem."""
    _listeners.append(listener)

    def stop() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return stop


def record(
    session: Session, conversation_id: str | None, type_: str, payload: dict[str, Any] | None = None
) -> Event:
    if conversation_id is not None:
        _lock_conversation(session, conversation_id)
    ev = Event(conversation_id=conversation_id, type=type_, payload=dict(payload or {}))
    session.add(ev)
    session.flush()
    session.info.setdefault(_MESSAGES, []).append(as_message(ev))
    return ev


def lock(session: Session, conversation_id: str) -> Conversation | None:
    """The conversation's row, locked FOR UPDATE for the rest of the transaction and read
    fresh under the lock, also when the session had loaded it before (None if it does not
    exist). Stronger than the FOR NO KEY UPDATE `record` takes, so events recorded for it
    in this transaction take no lock of their own: no second SELECT of the row."""
    conv = session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
    if conv is not None:
        _held(session)[conversation_id] = conv
    return conv


def _held(session: Session) -> dict[str, Conversation | None]:
    """The conversations locked in the session's current transaction."""
    txn = session.get_transaction()
    held: tuple[object, dict[str, Conversation | None]] | None = session.info.get(_LOCKS)
    if held is None or held[0] is not txn:
        held = (txn, {})
        session.info[_LOCKS] = held
    return held[1]


def _lock_conversation(session: Session, conversation_id: str) -> None:
    """Once per transaction and conversation (SQLite: its write lock already orders commits)."""
    held = _held(session)
    if conversation_id in held:
        return
    # The whole row, not just its id: the caller usually reads or updates it next (a chunk's
    # progress) and finds it loaded, as it is under this lock, without a second SELECT. Kept
    # here to the commit: the session's identity map holds unchanged rows only weakly.
    held[conversation_id] = session.get(
        Conversation, conversation_id, with_for_update={"key_share": True}
    )


def as_message(ev: Event) -> Message:
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
    """The conversation's events with `id > after`, oldest first."""
    q = (
        select(Event)
        .where(Event.conversation_id == conversation_id, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(session.scalars(q))


def replay_lookback(
    session: Session, conversation_id: str, after: int, seconds: float, limit: int = 500
) -> list[Event]:
    """Events up to `after` created within `seconds` before it.

    Live events reach a room in emission order, not id order (each process emits its own
    commits), so a client that saw `after` may have missed an older one emitted later while it
    was away. A join re-sends these too; the client drops the ones it has by id.
    """
    if after <= 0 or seconds <= 0:
        return []
    ref = session.scalar(
        select(Event.created_at).where(Event.id == after, Event.conversation_id == conversation_id)
    )
    if ref is None:
        return []
    q = (
        select(Event)
        .where(
            Event.conversation_id == conversation_id,
            Event.id <= after,
            Event.created_at >= ref - timedelta(seconds=seconds),
        )
        .order_by(Event.id.desc())
        .limit(limit)
    )
    return list(reversed(session.scalars(q).all()))


def _publish_after_commit(committed: Session) -> None:
    committed.info.pop(_LOCKS, None)
    messages = committed.info.pop(_MESSAGES, None)
    if messages:
        relay.publish(messages)
        for listener in list(_listeners):
            try:
                listener(messages)
            except Exception:  # an observer's bug must not fail a committed transaction
                log.exception("event listener %r failed", listener)


def emit_unemitted(session: Session, older_than: datetime, limit: int = 500) -> int:
    """The scheduler's relay job: emit what no process emitted after its commit."""
    events = session.scalars(
        select(Event)
        .where(Event.emitted_at.is_(None), Event.created_at <= older_than)
        .order_by(Event.id)
        .limit(limit)
    ).all()
    ids = relay.emit_now([as_message(e) for e in events])
    if ids:
        session.execute(
            update(Event)
            .where(Event.id.in_(ids))
            .values(emitted_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        log.info("relay: %d ledger event(s) emitted late", len(ids))
    return len(ids)


after_commit_hooks.append(_publish_after_commit)

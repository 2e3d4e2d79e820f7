"""Socket.IO handlers: `join` (with replay) and `leave` (docs/realtime.md §3).

A join is checked first; a refused one gets exactly one `join_error` and no room. An accepted
one enters the room *before* reading the ledger, then replays the missed events to this socket
only, then emits `joined`: an event committed during the replay is delivered live (and maybe
replayed too; clients drop duplicates by id), so nothing falls between replay and stream.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, request, session
from flask_socketio import SocketIO, join_room, leave_room
from pydantic import ValidationError as PydanticValidationError

from api.context import services
from api.inputs import find_bad_text, refuse
from api.schemas import JoinRequest, LeaveRequest
from mina import conversations, events
from mina.db import session_scope
from mina.errors import Forbidden, MinaError, Unauthorized, ValidationError
from mina.realtime import QueueManager
from mina.relay import OPERATORS_ROOM

log = logging.getLogger(__name__)

PAGE = 500


def register(sio: SocketIO) -> None:
    """Attach the handlers to the server `init_app` just built (call after it)."""
    sio.on_event("join", on_join)
    sio.on_event("leave", on_leave)


def _sid() -> str:
    sid: str = getattr(request, "sid")  # noqa: B009 - set by Flask-SocketIO per event
    return sid


def _send(event: str, data: dict[str, Any]) -> None:
    """To this socket only, from this process only (it is connected here)."""
    server = current_app.extensions["socketio"].server
    server.emit(event, data, to=_sid(), namespace="/", ignore_queue=True)


def _wait_listening() -> None:
    """With a message queue, events from other processes arrive through this process's
    subscription, which starts with its first client: wait for it before replaying."""
    manager = current_app.extensions["socketio"].server.manager
    if isinstance(manager, QueueManager) and not manager.listening(timeout=5.0):
        log.warning("socket %s: the socket.io message queue is not subscribed yet", _sid())


def on_join(data: Any = None) -> dict[str, Any]:
    if not isinstance(data, dict):
        return _refuse(ValidationError("join takes an object", code="invalid"), {})
    bad = find_bad_text(data, "join")
    if bad is not None:
        return _refuse(refuse(bad), {})
    try:
        req = JoinRequest.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _refuse(ValidationError(f"{where}: {first['msg']}", code="invalid"), data)
    tok = req.token or session.get("operator_token")
    try:
        if req.room == OPERATORS_ROOM:
            return _join_operators(tok)
        if req.conversation_id:
            return _join_conversation(req.conversation_id, tok, req.after)
        raise ValidationError("join needs conversation_id, or room 'operators'", code="invalid")
    except MinaError as exc:
        return _refuse(exc, data)


def _refuse(exc: MinaError, data: dict[str, Any]) -> dict[str, Any]:
    cid = data.get("conversation_id") if isinstance(data.get("conversation_id"), str) else None
    room = data.get("room") if isinstance(data.get("room"), str) else None
    _send(
        "join_error",
        {"code": exc.code, "message": exc.message, "conversation_id": cid, "room": room},
    )
    log.info("socket %s: join of %s refused (%s)", _sid(), cid or room or "?", exc.code)
    return {"ok": False, "error": {"code": exc.code, "message": exc.message}}


def _join_operators(tok: str | None) -> dict[str, Any]:
    if not tok:
        raise Unauthorized("the operator token is required")
    if not conversations.check_operator(tok, services().settings.operator_token):
        raise Forbidden("not the operator token")
    join_room(OPERATORS_ROOM)
    _wait_listening()
    info = {"room": OPERATORS_ROOM, "conversation_id": None, "replayed": 0, "last_id": None}
    _send("joined", info)
    return {"ok": True, **info}


def _join_conversation(conversation_id: str, tok: str | None, after: int) -> dict[str, Any]:
    settings = services().settings
    with session_scope() as s:
        conversations.authorize(s, conversation_id, tok, settings.operator_token)
    room = events.room(conversation_id)
    join_room(room)  # first: whatever commits from now on reaches this socket live
    _wait_listening()
    replayed, last = _replay(conversation_id, after, settings.realtime_replay_lookback_seconds)
    info = {"room": room, "conversation_id": conversation_id, "replayed": replayed, "last_id": last}
    _send("joined", info)
    log.info(
        "conversation %s: socket %s joined after %d, %d replayed",
        conversation_id,
        _sid(),
        after,
        replayed,
    )
    return {"ok": True, **info}


def _replay(conversation_id: str, after: int, lookback: float) -> tuple[int, int]:
    with session_scope() as s:
        older = [
            events.as_message(e)
            for e in events.replay_lookback(s, conversation_id, after, lookback)
        ]
    for message in older:
        _send(message["type"], message)
    sent, last = len(older), after
    while True:
        with session_scope() as s:
            page = [events.as_message(e) for e in events.replay(s, conversation_id, last, PAGE)]
        for message in page:
            _send(message["type"], message)
            last = message["id"]
        sent += len(page)
        if len(page) < PAGE:
            return sent, last


def on_leave(data: Any = None) -> dict[str, Any]:
    try:
        req = LeaveRequest.model_validate(data if isinstance(data, dict) else {})
    except PydanticValidationError:
        return {"ok": False, "error": {"code": "invalid", "message": "bad leave request"}}
    if req.room == OPERATORS_ROOM:
        leave_room(OPERATORS_ROOM)
    elif req.conversation_id:
        leave_room(events.room(req.conversation_id))
    return {"ok": True}

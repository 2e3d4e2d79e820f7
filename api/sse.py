"""Server-sent events: a conversation's ledger as `text/event-stream` (docs/realtime.md §4).

The stream polls the ledger, so it works in any process with or without Redis. It resumes after
`Last-Event-ID` (what `EventSource` sends when it reconnects), else after `?after=N`; sends a
keep-alive comment when idle; and ends after `sse_max_seconds` with an `end` event, so a thread
is never held forever. Ids of one conversation are committed in order (mina.events), so
`id > last` never skips an event that commits later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request
from spectree import Response as Resp

from api.context import services
from api.results import token
from api.schemas import MAX_EVENT_ID, EventStreamQuery, error_responses
from api.streaming import documented, parse_query
from mina import conversations, events
from mina.db import session_scope
from mina.errors import ValidationError
from mina.settings import Settings

log = logging.getLogger(__name__)

bp = Blueprint("sse", __name__, url_prefix="/api/conversations")

ERRORS = error_responses(400, 401, 403, 404)
PAGE = 500
RETRY_MS = 2000


@bp.get("/<conversation_id>/events/stream")
@documented(query=EventStreamQuery, resp=Resp(**ERRORS))
def stream(conversation_id: str) -> Response:
    """`text/event-stream` of the conversation's events after `Last-Event-ID` or `after`."""
    settings = services().settings
    with session_scope() as s:
        conversations.authorize(s, conversation_id, token(), settings.operator_token)
    q = parse_query(EventStreamQuery)
    after = _last_event_id(request.headers.get("Last-Event-ID"), q.after)
    log.info("conversation %s: event stream opened after %d", conversation_id, after)
    return Response(
        frames(conversation_id, after, settings),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _last_event_id(header: str | None, after: int) -> int:
    value = (header or "").strip()
    if value.isascii() and value.isdigit():
        if len(value) > 19 or int(value) > MAX_EVENT_ID:
            raise ValidationError("Last-Event-ID is not an event id", code="invalid_query")
        return int(value)
    return after


def frame(message: dict[str, Any]) -> str:
    data = json.dumps(message, separators=(",", ":"))
    return f"id: {message['id']}\nevent: {message['type']}\ndata: {data}\n\n"


def frames(conversation_id: str, after: int, settings: Settings) -> Iterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    start = time.monotonic()
    deadline = start + settings.sse_max_seconds
    quiet_since = start
    last = after
    while True:
        with session_scope() as s:
            page = [events.as_message(e) for e in events.replay(s, conversation_id, last, PAGE)]
        for message in page:
            yield frame(message)
            last = message["id"]
        now = time.monotonic()
        if page:
            quiet_since = now
        if now >= deadline:
            end = {"reason": "max_duration", "last_id": last}
            yield f"event: end\ndata: {json.dumps(end)}\n\n"
            return
        if len(page) == PAGE:
            continue
        if now - quiet_since >= settings.sse_keepalive_seconds:
            yield ": keep-alive\n\n"
            quiet_since = now
        time.sleep(min(settings.sse_poll_seconds, max(0.0, deadline - now)))

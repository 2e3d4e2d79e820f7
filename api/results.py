"""Result endpoints the pages read: analytics, action items, summary, refinement, merged audio.

Each answers 409 `not_ready` until its task is done; the body is exactly the `result` of the
task's `{task}_ready` event. Participant token, operator token, or the operator session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from flask import Blueprint, Response, jsonify, send_file, session
from spectree import Response as Resp

from api.auth import bearer, operator_token
from api.context import services
from api.extensions import spec
from api.schemas import AnalyticsOut, ErrorResponse
from api.streaming import documented
from mina import conversations, results
from mina.db import session_scope
from mina.errors import NotReady
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult

bp = Blueprint("results", __name__, url_prefix="/api/conversations")

ERRORS = {f"HTTP_{c}": ErrorResponse for c in (401, 403, 404, 409)}
AUDIO_MIME = "audio/ogg"
STREAM_BLOCK = 256 * 1024


def token() -> str | None:
    found: str | None = bearer() or session.get("operator_token")
    return found


def _result(conversation_id: str, name: str) -> Response:
    with session_scope() as s:
        conv = conversations.authorize(s, conversation_id, token(), operator_token())
        return jsonify(results.require_result(s, conv, name))


@bp.get("/<conversation_id>/analytics")
@spec.validate(resp=Resp(HTTP_200=AnalyticsOut, **ERRORS))
def analytics(conversation_id: str) -> Response:
    return _result(conversation_id, "analytics")


@bp.get("/<conversation_id>/tasks")
@spec.validate(resp=Resp(HTTP_200=TasksResult, **ERRORS))
def tasks(conversation_id: str) -> Response:
    return _result(conversation_id, "tasks")


@bp.get("/<conversation_id>/summary")
@spec.validate(resp=Resp(HTTP_200=SummaryResult, **ERRORS))
def summary(conversation_id: str) -> Response:
    return _result(conversation_id, "summary")


@bp.get("/<conversation_id>/refinement")
@spec.validate(resp=Resp(HTTP_200=RefinementResult, **ERRORS))
def refinement(conversation_id: str) -> Response:
    return _result(conversation_id, "refinement")


@bp.get("/<conversation_id>/audio")
@documented(resp=Resp(**ERRORS))
def audio(conversation_id: str) -> Response:
    """The merged recording (audio/ogg); byte ranges when the storage is a local directory."""
    with session_scope() as s:
        conv = conversations.authorize(s, conversation_id, token(), operator_token())
        results.require_result(s, conv, "merge")
        key = conv.merged_audio_key
    if key is None:
        raise NotReady("the merged audio is not ready")
    storage = services().storage
    name = f"{conversation_id}.ogg"
    local = storage.local_path(key)
    if local is not None:
        return send_file(local, mimetype=AUDIO_MIME, conditional=True, download_name=name)
    size = storage.size(key)
    body = storage.open(key)
    return Response(
        _blocks(body),
        mimetype=AUDIO_MIME,
        headers={"Content-Length": str(size), "Content-Disposition": f"inline; filename={name}"},
        direct_passthrough=True,
    )


def _blocks(body: BinaryIO) -> Iterator[bytes]:
    with body:
        while block := body.read(STREAM_BLOCK):
            yield block

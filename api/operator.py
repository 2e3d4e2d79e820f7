"""Operator API (docs/operator-api.md): list, inspect, stats, retry, force finish.

Every route needs the operator token (bearer, `?token=`, or the dashboard's session cookie).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from spectree import Response as Resp

from api.auth import require_operator
from api.context import services
from api.extensions import spec
from api.schemas import (
    ConversationDetail,
    ConversationList,
    FinishOut,
    FinishRequest,
    OperatorListQuery,
    RetryOut,
    RetryRequest,
    StatsOut,
    error_responses,
)
from mina import operator, resilience
from mina.db import session_scope, utcnow
from mina.errors import TransientError
from mina.pipeline import finish as finish_service

bp = Blueprint("operator", __name__, url_prefix="/api/operator")

ERRORS = error_responses(400, 401, 403, 404, 409)


@bp.before_request
def _operators_only() -> None:
    require_operator()


@bp.get("/conversations")
@spec.validate(query=OperatorListQuery, resp=Resp(HTTP_200=ConversationList, **ERRORS))
def list_conversations() -> Response:
    q = OperatorListQuery.model_validate(request.args.to_dict())
    settings = services().settings
    f = operator.ListFilter(
        status=q.statuses(),
        processing_status=q.processing_statuses(),
        stuck=q.stuck,
        failed=q.failed,
        stuck_seconds=q.stuck_seconds or settings.operator_stuck_seconds,
        limit=q.limit,
        offset=q.offset,
        cursor=q.cursor,
    )
    with session_scope() as session:
        return jsonify(operator.list_conversations(session, f, utcnow()))


@bp.get("/conversations/<conversation_id>")
@spec.validate(resp=Resp(HTTP_200=ConversationDetail, **ERRORS))
def conversation(conversation_id: str) -> Response:
    stuck = services().settings.operator_stuck_seconds
    with session_scope() as session:
        return jsonify(operator.detail(session, conversation_id, utcnow(), stuck))


@bp.get("/stats")
@spec.validate(resp=Resp(HTTP_200=StatsOut, **ERRORS))
def stats() -> Response:
    settings = services().settings
    depths = services().dispatcher.queue_depths()
    with session_scope() as session:
        out = operator.stats(session, utcnow(), settings.operator_stuck_seconds, depths)
    try:
        out["providers"] = resilience.breaker_states(settings)
    except TransientError:  # Redis unreachable: the rest of the stats still help
        out["providers"] = None
    return jsonify(out)


@bp.post("/conversations/<conversation_id>/retry")
@spec.validate(json=RetryRequest, resp=Resp(HTTP_202=RetryOut, **ERRORS))
def retry(conversation_id: str) -> tuple[Response, int]:
    body = RetryRequest.model_validate(request.get_json(silent=True) or {})
    out = operator.retry(conversation_id, body.what, services().dispatcher)
    return jsonify(out), 202


@bp.post("/conversations/<conversation_id>/finish")
@spec.validate(json=FinishRequest, resp=Resp(HTTP_202=FinishOut, **ERRORS))
def finish_conversation(conversation_id: str) -> tuple[Response, int]:
    body = FinishRequest.model_validate(request.get_json(silent=True) or {})
    out = finish_service.finish_conversation(
        conversation_id, body.expected_chunks, services().dispatcher
    )
    return jsonify(out), 202

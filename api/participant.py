"""Participant API (DESIGN §7): conversations, finish, status, transcript, events (chunk
uploads: api/uploads.py)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from spectree import Response as Resp

from api.auth import authorize_conversation, operator_token, require_operator
from api.context import services
from api.extensions import spec
from api.inputs import json_body
from api.results import token as reader_token
from api.schemas import (
    Accepted,
    ConversationCreated,
    ConversationStatus,
    CreateConversation,
    EventsOut,
    EventsQuery,
    FinishRequest,
    TranscriptOut,
    TranscriptQuery,
    error_responses,
)
from mina import conversations, events, languages, results
from mina.db import session_scope
from mina.pipeline import finish as finish_service
from mina.transcript import FORMATS, MIMETYPES

bp = Blueprint("participant", __name__, url_prefix="/api/conversations")

ERRORS = error_responses(400, 401, 403, 404, 409)


@bp.post("")
@spec.validate(
    json=CreateConversation,
    resp=Resp(HTTP_201=ConversationCreated, **ERRORS, **error_responses(415)),
)
def create() -> tuple[Response, int]:
    svc = services()
    if svc.settings.create_requires_operator:
        require_operator()
    body = json_body(CreateConversation)
    with session_scope() as session:
        language = languages.validate(body.language, svc.settings)
        conv, token = conversations.create(
            session, body.title, languages.initial(language, svc.settings)
        )
        out = {
            "id": conv.id,
            "token": token,
            "title": conv.title,
            "language": conv.language,
            "participant_url": f"{svc.settings.base_url}/c/{conv.id}?token={token}",
            "status": conv.status,
        }
    return jsonify(out), 201


@bp.post("/<conversation_id>/finish")
@spec.validate(json=FinishRequest, resp=Resp(HTTP_202=Accepted, **ERRORS, **error_responses(415)))
def finish_conversation(conversation_id: str) -> tuple[Response, int]:
    authorize_conversation(conversation_id)
    body = json_body(FinishRequest)
    out = finish_service.finish_conversation(
        conversation_id, body.expected_chunks, services().dispatcher
    )
    out.pop("changed")
    return jsonify(out), 202


@bp.get("/<conversation_id>")
@spec.validate(resp=Resp(HTTP_200=ConversationStatus, **ERRORS))
def status(conversation_id: str) -> Response:
    authorize_conversation(conversation_id)
    with session_scope() as session:
        conv = conversations.get(session, conversation_id)
        return jsonify(conversations.status_view(session, conv))


@bp.get("/<conversation_id>/transcript")
@spec.validate(
    query=TranscriptQuery,
    resp=Resp(HTTP_200=TranscriptOut, **ERRORS),
    skip_validation=True,  # txt/srt/vtt bodies are not JSON; the query is validated below
)
def transcript(conversation_id: str) -> Response:
    with session_scope() as session:  # the dashboard reads it with its session (like results)
        conversations.authorize(session, conversation_id, reader_token(), operator_token())
    fmt = TranscriptQuery.model_validate(request.args.to_dict()).format
    with session_scope() as session:
        conv = conversations.get(session, conversation_id)
        segments, complete = results.transcript(session, conv)
    if fmt == "json":
        return jsonify(
            {
                "complete": complete,
                "segments": [
                    {
                        "start": s.start,
                        "end": s.end,
                        "speaker": s.speaker,
                        "text": s.text,
                        "chunk_index": s.chunk_index,
                        "flag": s.flag,
                    }
                    for s in segments
                ],
            }
        )
    return Response(FORMATS[fmt](segments), mimetype=MIMETYPES[fmt])


@bp.get("/<conversation_id>/events")
@spec.validate(query=EventsQuery, resp=Resp(HTTP_200=EventsOut, **ERRORS))
def event_log(conversation_id: str) -> Response:
    authorize_conversation(conversation_id)
    q = EventsQuery.model_validate(request.args.to_dict())
    with session_scope() as session:
        rows = events.replay(session, conversation_id, q.after, q.limit)
        return jsonify({"events": [events.as_message(e) for e in rows]})

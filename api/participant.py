"""Participant API (DESIGN §7): conversations, chunks, finish, status, transcript, events."""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from spectree import Response as Resp

from api.auth import bearer, operator_token, require_operator
from api.context import services
from api.extensions import spec
from api.results import token as reader_token
from api.schemas import (
    Accepted,
    ChunkAccepted,
    ChunkUploadForm,
    ConversationCreated,
    ConversationStatus,
    CreateConversation,
    ErrorResponse,
    EventsOut,
    EventsQuery,
    FinishRequest,
    TranscriptOut,
    TranscriptQuery,
)
from mina import conversations, events, ingest, languages, results
from mina.db import session_scope
from mina.errors import ValidationError
from mina.pipeline import finish as finish_service
from mina.transcript import FORMATS, MIMETYPES

M = TypeVar("M", bound=BaseModel)

bp = Blueprint("participant", __name__, url_prefix="/api/conversations")

ERRORS = {f"HTTP_{c}": ErrorResponse for c in (400, 401, 403, 404, 409)}


def json_body(model: type[M]) -> M:
    """The request's JSON validated by `model`; no body is `{}`, a malformed one is 400."""
    if not request.get_data(cache=True):
        return model.model_validate({})
    raw = request.get_json(silent=True)
    if raw is None:
        raise ValidationError("the request body is not valid JSON", code="malformed_json")
    return model.model_validate(raw)


def _authorized(conversation_id: str) -> conversations.Conversation:
    with session_scope() as session:
        return conversations.authorize(session, conversation_id, bearer(), operator_token())


@bp.post("")
@spec.validate(json=CreateConversation, resp=Resp(HTTP_201=ConversationCreated, **ERRORS))
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


@bp.post("/<conversation_id>/chunks")
@spec.validate(
    form=ChunkUploadForm,
    skip_validation=True,
    resp=Resp(
        HTTP_200=ChunkAccepted,
        HTTP_202=ChunkAccepted,
        HTTP_413=ErrorResponse,
        HTTP_415=ErrorResponse,
        **ERRORS,
    ),
)
def upload_chunk(conversation_id: str) -> tuple[Response, int]:
    _authorized(conversation_id)
    svc = services()
    index = ingest.check_index(request.form.get("index"), svc.settings)
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError("multipart field 'file' is required", code="missing_file")
    accepted = ingest.accept_chunk(
        conversation_id,
        index,
        upload.stream,  # type: ignore[arg-type]
        storage=svc.storage,
        dispatcher=svc.dispatcher,
        settings=svc.settings,
    )
    return chunk_accepted(accepted)


def chunk_accepted(accepted: ingest.Accepted) -> tuple[Response, int]:
    """202 for a new chunk, 200 for the same bytes again (direct upload and presign confirm)."""
    c = accepted.chunk
    body = {
        "id": c.id,
        "index": c.index,
        "status": c.status,
        "sha256": c.sha256,
        "size": c.size,
        "duration": c.duration,
        "created": accepted.created,
    }
    return jsonify(body), 202 if accepted.created else 200


@bp.post("/<conversation_id>/finish")
@spec.validate(json=FinishRequest, resp=Resp(HTTP_202=Accepted, **ERRORS))
def finish(conversation_id: str) -> tuple[Response, int]:
    _authorized(conversation_id)
    body = json_body(FinishRequest)
    out = finish_service.finish(conversation_id, body.expected_chunks, services().dispatcher)
    out.pop("changed")
    return jsonify(out), 202


@bp.get("/<conversation_id>")
@spec.validate(resp=Resp(HTTP_200=ConversationStatus, **ERRORS))
def status(conversation_id: str) -> Response:
    _authorized(conversation_id)
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
    _authorized(conversation_id)
    q = EventsQuery.model_validate(request.args.to_dict())
    with session_scope() as session:
        rows = events.replay(session, conversation_id, q.after, q.limit)
        return jsonify({"events": [events.as_message(e) for e in rows]})

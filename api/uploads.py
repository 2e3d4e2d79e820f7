"""Chunk uploads (DESIGN §3.1): the direct multipart upload, and presigned uploads for S3
storage (presign, PUT to S3, confirm)."""

from __future__ import annotations

from typing import BinaryIO

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Resp
from sqlalchemy.orm import Session

from api.auth import authorize_conversation, authorize_in
from api.context import services
from api.extensions import spec
from api.inputs import json_body
from api.schemas import (
    MAX_INDEX,
    MAX_UPLOAD_BYTES,
    ChunkAccepted,
    ChunkUploadForm,
    ErrorResponse,
    error_responses,
)
from mina import ingest, presign
from mina.errors import ValidationError
from mina.models import Conversation

bp = Blueprint("uploads", __name__, url_prefix="/api/conversations")

ERRORS = error_responses(400, 401, 403, 404, 409)


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
    svc = services()

    def open_request(db: Session) -> tuple[Conversation, int, BinaryIO]:
        # The token, the index and the file, in this order, inside the upload's one transaction.
        conv = authorize_in(db, conversation_id)
        index = ingest.check_index(request.form.get("index"), svc.settings)
        upload = request.files.get("file")
        if upload is None:
            raise ValidationError("multipart field 'file' is required", code="missing_file")
        return conv, index, upload.stream  # type: ignore[return-value]

    accepted = ingest.receive_direct(
        open_request, storage=svc.storage, dispatcher=svc.dispatcher, settings=svc.settings
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


class PresignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=MAX_INDEX)
    size: int = Field(gt=0, le=MAX_UPLOAD_BYTES, description="bytes the PUT will send")
    content_type: str = Field(max_length=100, examples=["audio/webm;codecs=opus"])


class PresignOut(BaseModel):
    index: int
    key: str
    url: str = Field(description="PUT the file here, with `headers`")
    method: str
    headers: dict[str, str]
    expires_in: int


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=MAX_INDEX)
    key: str = Field(max_length=300)


@bp.post("/<conversation_id>/chunks/presign")
@spec.validate(
    json=PresignRequest,
    resp=Resp(HTTP_200=PresignOut, HTTP_413=ErrorResponse, HTTP_415=ErrorResponse, **ERRORS),
)
def presign_chunk(conversation_id: str) -> tuple[Response, int]:
    authorize_conversation(conversation_id)
    svc = services()
    body = json_body(PresignRequest)
    index = ingest.check_index(body.index, svc.settings)
    out = presign.presign_chunk(
        conversation_id,
        index,
        body.size,
        body.content_type,
        storage=svc.storage,
        settings=svc.settings,
    )
    return jsonify(
        {
            "index": index,
            "key": out.key,
            "url": out.url,
            "method": "PUT",
            "headers": out.headers,
            "expires_in": out.expires_in,
        }
    ), 200


@bp.post("/<conversation_id>/chunks/confirm")
@spec.validate(
    json=ConfirmRequest,
    resp=Resp(
        HTTP_200=ChunkAccepted,
        HTTP_202=ChunkAccepted,
        HTTP_413=ErrorResponse,
        HTTP_415=ErrorResponse,
        **ERRORS,
    ),
)
def confirm_chunk(conversation_id: str) -> tuple[Response, int]:
    authorize_conversation(conversation_id)
    svc = services()
    body = json_body(ConfirmRequest)
    index = ingest.check_index(body.index, svc.settings)
    accepted = presign.confirm_chunk(
        conversation_id,
        index,
        body.key,
        storage=svc.storage,
        dispatcher=svc.dispatcher,
        settings=svc.settings,
    )
    return chunk_accepted(accepted)

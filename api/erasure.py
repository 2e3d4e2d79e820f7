"""Erasure (docs/memory.md): `DELETE /api/conversations/{id}`, operators only, removes the
conversation's audio, rows, ledger events and search index (`mina.memory.erasure`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field
from spectree import Response as Resp

from api.auth import require_operator
from api.context import services
from api.extensions import spec
from api.schemas import error_responses
from mina.memory import erasure

bp = Blueprint("erasure", __name__, url_prefix="/api/conversations")

ERRORS = error_responses(401, 403, 404)


class ErasedOut(BaseModel):
    conversation_id: str
    blobs: int = Field(description="stored audio files deleted")
    webhooks: int = Field(description="raw provider webhooks of its chunks deleted")


@bp.delete("/<conversation_id>")
@spec.validate(resp=Resp(HTTP_200=ErasedOut, **ERRORS))
def erase(conversation_id: str) -> Response:
    """Erase a conversation and everything of it: audio, transcript, results, events, index."""
    require_operator()
    return jsonify(erasure.erase(services().storage, conversation_id))

"""Result endpoints the pages read: analytics, action items, summary, refinement, merged audio,
and the speakers with their names (read and rename).

Each answers 409 `not_ready` until its task is done; the body is the task's stored result as
people see it: speakers by their names (`mina.results.shown`), action items with the owners
settled after diarization. Participant token, operator token, or the operator session: the
people in a meeting may name its speakers (docs/post-processing.md, "Names and owners").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from flask import Blueprint, Response, jsonify, request, send_file, session
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Resp

from api.auth import bearer, operator_token
from api.context import services
from api.extensions import spec
from api.schemas import AnalyticsOut, ErrorResponse, error_responses
from api.streaming import documented
from mina import conversations, notes, results
from mina.db import session_scope
from mina.errors import NotReady
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult
from mina.memory import index as search_index
from mina.memory import voiceprints
from mina.memory.retention import erased_audio

bp = Blueprint("results", __name__, url_prefix="/api/conversations")

ERRORS = error_responses(401, 403, 404, 409)
RENAME_ERRORS = {f"HTTP_{c}": ErrorResponse for c in (400, 401, 403, 404, 409)}


class SpeakerOut(BaseModel):
    speaker: str = Field(description="the label diarization gave (S1, S2, ...)")
    name: str | None = Field(description="learned from the conversation or given; may be unsure")
    confidence: float | None = Field(description="1.0 for a given name")
    source: str | None = Field(
        description='"conversation" (learned), "user" (given) or "voiceprint" (a known voice)'
    )
    shown: str = Field(description="what results show for this speaker")


class SpeakersOut(BaseModel):
    speakers: list[SpeakerOut]


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=notes.NAME_MAX)
    remember: bool = Field(
        False,
        description="consent to remember this voice: stored as a voiceprint of the person and "
        "recognized by name in later meetings (docs/memory.md, Known speakers)",
    )
    apply_to_past: bool = Field(
        False,
        description='operators, with "remember": also name this person in past meetings where '
        "the same voice is found",
    )


class RenameOut(BaseModel):
    speaker: str
    name: str
    previous: str
    person_id: str | None = Field(None, description="the remembered person (remember: true)")
    applied_to: list[str] = Field([], description="past conversations renamed (apply_to_past)")


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


@bp.get("/<conversation_id>/speakers")
@spec.validate(resp=Resp(HTTP_200=SpeakersOut, **ERRORS))
def speakers(conversation_id: str) -> Response:
    """Speakers with their names: learned from the conversation (with a confidence) or given."""
    with session_scope() as s:
        conv = conversations.authorize(s, conversation_id, token(), operator_token())
        return jsonify({"speakers": notes.speakers(s, conv)})


@bp.put("/<conversation_id>/speakers/<speaker>")
@spec.validate(json=RenameRequest, resp=Resp(HTTP_200=RenameOut, **RENAME_ERRORS))
def rename_speaker(conversation_id: str, speaker: str) -> Response:
    """Name a speaker (by its label or its shown name); results show the name from now on and a
    `speaker_renamed` event goes out."""
    body = RenameRequest.model_validate(request.get_json(silent=True) or {})
    with session_scope() as s:
        conv = conversations.authorize(s, conversation_id, token(), operator_token())
        renamed = notes.rename(s, conv, speaker, body.name)
        renamed |= voiceprints.on_rename(
            s,
            conv,
            renamed["speaker"],
            renamed["name"],
            body.remember,
            body.apply_to_past,
            conversations.check_operator(token(), operator_token()),
        )
        search_index.rename(s, conv)  # search shows and filters by the new name
        return jsonify(renamed)


@bp.get("/<conversation_id>/audio")
@documented(resp=Resp(**ERRORS))
def audio(conversation_id: str) -> Response:
    """The merged recording (audio/ogg); byte ranges when the storage is a local directory."""
    with session_scope() as s:
        conv = conversations.authorize(s, conversation_id, token(), operator_token())
        results.require_result(s, conv, "merge")
        key = conv.merged_audio_key
    if key is None:
        erased_audio(conversation_id)  # deleted by retention: 404 (docs/memory.md)
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

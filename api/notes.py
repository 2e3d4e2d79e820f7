"""`GET /api/conversations/{id}/notes?format=md|json`: the meeting notes (`mina.minutes`), the
same document `mina process --format md|json` writes. Participant token for its own
conversation, operator token (or the dashboard's session) for any."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field
from spectree import Response as Resp

from api.auth import operator_token
from api.extensions import spec
from api.results import token
from api.schemas import error_responses
from mina import conversations, minutes
from mina.db import session_scope

bp = Blueprint("notes", __name__, url_prefix="/api/conversations")

ERRORS = error_responses(400, 401, 403, 404)


class NotesQuery(BaseModel):
    format: Literal["md", "json"] = Field(
        "json", description="md: Markdown a person reads (text/markdown); json: this document"
    )


class NoteItem(BaseModel):
    text: str
    owner: str | None
    due: str | None = Field(description="ISO date")
    time: float | None = Field(description="seconds from the start where it was said")


class NoteSpeaker(BaseModel):
    speaker: str
    talk_seconds: float
    share: float
    words: int
    turns: int
    questions: int


class NoteTurn(BaseModel):
    start: float
    end: float
    speaker: str | None
    text: str


class NotesOut(BaseModel):
    conversation_id: str
    title: str
    date: str = Field(description="when the conversation was created, UTC")
    duration_seconds: float | None
    language: str | None
    status: str
    processing_status: str
    pending: list[str] = Field(description="parts still being processed, absent below")
    notices: list[str] = Field(description="what a step could not do, e.g. English-only rules")
    summary: str | None
    key_points: list[str]
    decisions: list[str]
    open_questions: list[str]
    action_items: list[NoteItem]
    action_note: str | None = Field(description="why there are no action items, if known")
    speakers: list[NoteSpeaker]
    transcript: list[NoteTurn]


@bp.get("/<conversation_id>/notes")
@spec.validate(
    query=NotesQuery,
    resp=Resp(HTTP_200=NotesOut, **ERRORS),
    skip_validation=True,  # the Markdown body is not JSON; the query is validated below
)
def notes(conversation_id: str) -> Response:
    """Meeting notes: title, date, duration, summary, decisions, open questions, action items,
    speakers and the transcript in turns, as Markdown or JSON."""
    fmt = NotesQuery.model_validate(request.args.to_dict()).format
    with session_scope() as s:
        conv = conversations.authorize(s, conversation_id, token(), operator_token())
        doc = minutes.build(s, conv)
    if fmt == "json":
        return jsonify(doc)
    return Response(minutes.markdown(doc), mimetype="text/markdown")

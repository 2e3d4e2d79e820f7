"""Search over what was said in meetings (docs/memory.md).

`GET /api/search?q=&speaker=&from=&to=&conversation=&limit=&offset=`: the operator token (or the
dashboard's session) searches every conversation; a participant token only its own.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, session
from pydantic import BaseModel, ConfigDict, Field, field_validator
from spectree import Response as Resp
from sqlalchemy import select

from api.auth import bearer, operator_token
from api.extensions import spec
from api.schemas import error_responses
from api.streaming import parse_query
from mina.conversations import check_operator, hash_token
from mina.db import session_scope
from mina.errors import Forbidden, Unauthorized, ValidationError
from mina.memory import search as memory
from mina.models import Conversation

bp = Blueprint("search", __name__, url_prefix="/api")

ERRORS = error_responses(400, 401, 403)
_ID = r"^[0-9a-f]{32}$"


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    q: str = Field(
        min_length=1,
        max_length=memory.QUERY_MAX,
        description="words to find: "
        'words all match, "a phrase", `or` between alternatives, `-word` excludes',
    )
    speaker: str | None = Field(
        None, min_length=1, max_length=80, description="a speaker's name or label (S1), any case"
    )
    from_: str | None = Field(
        None,
        alias="from",
        max_length=32,
        description="meetings from this date or time (ISO 8601, UTC)",
    )
    to: str | None = Field(
        None, max_length=32, description="meetings up to this date (inclusive) or before this time"
    )
    conversation: str | None = Field(None, pattern=_ID, description="one conversation's id")
    limit: int = Field(20, ge=1, le=memory.LIMIT_MAX)
    offset: int = Field(0, ge=0, le=memory.OFFSET_MAX)

    @field_validator("from_", "to")
    @classmethod
    def _moment(cls, value: str | None) -> str | None:
        if value is not None:
            memory.moment(value, end=False)
        return value


class HitOut(BaseModel):
    conversation_id: str
    title: str
    meeting_at: str = Field(description="when the meeting was created (UTC)")
    position: int = Field(description="the segment's place in the transcript")
    speaker: str | None = Field(description="as results show it: the name, or the label")
    speaker_label: str | None
    start: float = Field(description="seconds from the start of the meeting")
    end: float
    text: str
    snippet: str = Field(description="HTML: the matched words in <mark>, the rest escaped")
    audio: bool = Field(description="the merged audio is still kept")
    link: str = Field(
        description="the transcript at this moment (dashboard, or the participant "
        "page: add your ?token=)"
    )
    audio_url: str | None = Field(description="the merged audio from this moment (#t=)")


class SearchOut(BaseModel):
    hits: list[HitOut]
    next_offset: int | None = Field(description="the offset of the next page, null on the last")


def _scope(token: str | None) -> str | None:
    """None for operators; the participant's conversation id otherwise."""
    if not token:
        raise Unauthorized("a bearer token is required")
    if check_operator(token, operator_token()):
        return None
    with session_scope() as s:
        found = s.scalars(
            select(Conversation.id).where(Conversation.token_hash == hash_token(token)).limit(1)
        ).first()
    if found is None:
        raise Forbidden("this token opens no conversation")
    return found


@bp.get("/search")
@spec.validate(query=SearchQuery, resp=Resp(HTTP_200=SearchOut, **ERRORS))
def search() -> Response:
    """Full-text search over revealed transcripts: hits with a highlighted snippet, the
    speaker, the time and links to the transcript and the audio at that moment."""
    query = parse_query(SearchQuery)
    own = _scope(bearer() or session.get("operator_token"))
    if own is not None and query.conversation not in (None, own):
        raise Forbidden("a participant token searches its own conversation only")
    try:
        since = memory.moment(query.from_, end=False) if query.from_ else None
        until = memory.moment(query.to, end=True) if query.to else None
    except (ValueError, OverflowError) as exc:
        raise ValidationError(f"from/to: {exc}", code="invalid_query") from exc
    q = memory.Query(
        text=query.q,
        speaker=query.speaker,
        since=since,
        until=until,
        conversation_id=own or query.conversation,
        limit=query.limit,
        offset=query.offset,
    )
    with session_scope() as s:
        hits, more = memory.search(s, q)
    out = []
    for h in hits:
        at = f"{h.start:.1f}"
        link = (
            f"/c/{h.conversation_id}#t={at}" if own else f"/dashboard#c={h.conversation_id}&t={at}"
        )
        audio = f"/api/conversations/{h.conversation_id}/audio#t={at}" if h.audio else None
        out.append({**h.as_json(), "link": link, "audio_url": audio})
    return jsonify({"hits": out, "next_offset": query.offset + query.limit if more else None})

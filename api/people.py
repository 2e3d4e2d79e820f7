"""Known speakers (docs/memory.md): the people Mina remembers by voice, for operators.

`GET /api/people` lists them; `DELETE /api/people/{id}` erases one: voiceprints, matches and
every speaker name that came from them, in every meeting (`mina.memory.voiceprints.erase`).
People are made by naming a speaker with `"remember": true` (`PUT .../speakers/{speaker}`).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field
from spectree import Response as Resp

from api.auth import require_operator
from api.extensions import spec
from api.schemas import ErrorResponse, error_responses
from mina.db import session_scope
from mina.memory import voiceprints

bp = Blueprint("people", __name__, url_prefix="/api/people")

ERRORS = error_responses(401, 403)


class PersonOut(BaseModel):
    id: str
    name: str
    consent: bool = Field(description="agreed to be recognized by voice")
    voiceprints: int = Field(description="voices kept, one per meeting the name was confirmed in")
    meetings: int = Field(description="meeting speakers shown by this person's name")
    created_at: str


class PeopleOut(BaseModel):
    people: list[PersonOut]


class PersonErasedOut(BaseModel):
    person_id: str
    voiceprints: int = Field(description="voiceprints deleted")
    conversations: int = Field(description="meetings whose speaker names were taken back")


@bp.get("")
@spec.validate(resp=Resp(HTTP_200=PeopleOut, **ERRORS))
def people() -> Response:
    """The people Mina recognizes by voice."""
    require_operator()
    with session_scope() as s:
        return jsonify({"people": voiceprints.people(s)})


@bp.delete("/<person_id>")
@spec.validate(resp=Resp(HTTP_200=PersonErasedOut, HTTP_404=ErrorResponse, **ERRORS))
def erase(person_id: str) -> Response:
    """Erase a person: their voiceprints and their name from every meeting."""
    require_operator()
    return jsonify(voiceprints.erase(person_id))

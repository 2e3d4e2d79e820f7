"""Bearer tokens: the conversation's participant token, or the operator token everywhere."""

from __future__ import annotations

from flask import current_app, request, session
from sqlalchemy.orm import Session

from mina import conversations
from mina.conversations import check_operator
from mina.db import session_scope
from mina.errors import Forbidden, Unauthorized


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.args.get("token") or None


def operator_token() -> str | None:
    token: str | None = current_app.config["MINA_SETTINGS"].operator_token
    return token


def require_operator() -> None:
    token = bearer() or session.get("operator_token")
    if not token:
        raise Unauthorized("the operator token is required")
    if not check_operator(token, operator_token()):
        raise Forbidden("not the operator token")


def authorize_conversation(conversation_id: str) -> conversations.Conversation:
    """The conversation, if the bearer token is its participant token or the operator's."""
    with session_scope() as db:
        return authorize_in(db, conversation_id)


def authorize_in(db: Session, conversation_id: str) -> conversations.Conversation:
    """`authorize_conversation` inside the caller's transaction (one round of BEGIN and COMMIT
    for a view that reads more in the same breath: the chunk upload)."""
    return conversations.authorize(db, conversation_id, bearer(), operator_token())

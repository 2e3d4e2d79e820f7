"""Every error leaves as `{"error": {"code", "message"}}` with a fitting status.

The mapping from `mina.errors` to HTTP lives here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from mina.errors import (
    Conflict,
    Forbidden,
    MinaError,
    NotFound,
    PermanentError,
    TooLarge,
    TransientError,
    Unauthorized,
    UnsupportedMedia,
    ValidationError,
)

log = logging.getLogger(__name__)


#: The most specific class first: a subclass maps as itself (TooLarge is a ValidationError).
STATUS: tuple[tuple[type[MinaError], int], ...] = (
    (TooLarge, 413),
    (UnsupportedMedia, 415),
    (ValidationError, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PermanentError, 422),
    (TransientError, 503),
)


def first_problem(errors: Sequence[Mapping[str, Any]], fallback: str) -> str:
    """The first of pydantic's validation errors as "field.path: message" (the message alone when
    it has no location; `fallback` when there is none): one wording for every refused body."""
    if not errors:
        return fallback
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    detail = str(first.get("msg", fallback))
    return f"{where}: {detail}" if where else detail


def status_of(exc: MinaError) -> int:
    """The HTTP status of a Mina error; 500 for one the API has no answer for."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def register(app: Flask) -> None:
    @app.errorhandler(MinaError)
    def _mina(exc: MinaError) -> tuple[Response, int]:
        status = status_of(exc)
        if status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error_response(status, exc.code, exc.message)

    @app.errorhandler(PydanticValidationError)
    def _invalid(exc: PydanticValidationError) -> tuple[Response, int]:
        return error_response(400, "invalid_request", first_problem(exc.errors(), str(exc)))

    @app.errorhandler(OperationalError)
    def _database(exc: OperationalError) -> tuple[Response, int]:
        # The database out of reach (down, restarting, out of connections): a retry can succeed.
        log.warning("database unavailable: %s", str(exc.orig or exc).splitlines()[0][:200])
        response, status = error_response(
            503, "database_unavailable", "the database is unavailable; try again shortly"
        )
        response.headers["Retry-After"] = "1"
        return response, status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
        return error_response(413, "too_large", "the upload is larger than the configured limit")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

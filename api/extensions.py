"""Extensions created unbound, bound to the app in `create_app`."""

from __future__ import annotations

from typing import Any

from flask_socketio import SocketIO
from spectree import SpecTree

from api.errors import first_problem
from mina.errors import ValidationError


def _raise_validation(
    req: Any, resp: Any, err: Exception | None, instance: Any, adapter: Any
) -> None:
    if err is not None:
        message = first_problem(adapter.validation_errors(err), str(err))
        raise ValidationError(message, code="invalid_body")


socketio = SocketIO()
spec = SpecTree(
    "flask",
    title="Mina API",
    version="0.1.0",
    path="apidoc",
    before=_raise_validation,
    validation_error_status=400,
    annotations=False,
)

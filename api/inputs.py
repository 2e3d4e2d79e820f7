"""Text a request carries must be storable: no NUL and no lone surrogate, anywhere.

PostgreSQL refuses NUL in text and a lone surrogate cannot be encoded as UTF-8, so either one in
a title, an id or a webhook field used to surface as a 500 deep inside a service. One hook,
before any view, checks the path (and so every path parameter), the query string, form fields
and a JSON body (keys and string values at any depth), and answers 400 `invalid_text` naming
where. Socket.IO messages go through `find_bad_text` too (api/realtime.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from flask import Flask, request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from api.errors import first_problem
from mina.errors import UnsupportedMedia, ValidationError

M = TypeVar("M", bound=BaseModel)

_BAD = re.compile("[\x00\ud800-\udfff]")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def bad_text(value: str) -> bool:
    return _BAD.search(value) is not None


def find_bad_text(value: Any, where: str) -> str | None:
    """Where in a JSON-like value (dicts, lists, strings) the first bad text is, or None."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if bad_text(item):
                return at
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and bad_text(key):
                    return f"{at} (a key)"
                stack.append((sub, f"{at}.{key}"))
        elif isinstance(item, list):
            stack.extend((sub, f"{at}[{n}]") for n, sub in enumerate(item))
    return None


def refuse(where: str) -> ValidationError:
    return ValidationError(
        f"{where}: text may not contain NUL characters or lone surrogates", code="invalid_text"
    )


def _pairs(where: str, items: Iterable[tuple[str, str]]) -> str | None:
    for key, value in items:
        if bad_text(key) or bad_text(value):
            return f"{where} {key!r}" if not bad_text(key) else f"{where} (a name)"
    return None


def _json_body() -> Any:
    data = request.get_data(cache=True)
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None  # not JSON: the view says what it expected
    except RecursionError:
        raise ValidationError("the request body nests too deeply", code="malformed_json") from None


def check_request() -> None:
    """Before every view: refuse a request with bad text in any of its string inputs."""
    where = None
    if bad_text(request.path):
        where = "path"
    else:
        where = _pairs("query parameter", request.args.items(multi=True))
    if where is None and request.mimetype in FORM_TYPES:
        where = _pairs("form field", request.form.items(multi=True))
    elif where is None and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        where = find_bad_text(_json_body(), "body")
    if where is not None:
        raise refuse(where)


def register(app: Flask) -> None:
    app.before_request(check_request)


def json_body(model: type[M]) -> M:
    """The request's JSON validated by `model`; no body is `{}`, a malformed one is 400.

    A form (urlencoded or multipart) with fields is 415: read as JSON it would be no body and its
    fields silently dropped. Whatever is not the model's object is 400 `invalid_body`, the code
    the route's schema check gives, so `[]` and `[{}]` are refused alike."""
    if request.mimetype in FORM_TYPES and (request.form or request.files):
        raise UnsupportedMedia(
            "this endpoint reads a JSON body: send it as application/json, not as a form",
            code="unsupported_content_type",
        )
    if not request.get_data(cache=True):
        return model.model_validate({})
    raw = request.get_json(silent=True)
    if raw is None:
        raise ValidationError("the request body is not valid JSON", code="malformed_json")
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        raise ValidationError(first_problem(exc.errors(), str(exc)), code="invalid_body") from None

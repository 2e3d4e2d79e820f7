"""Routes whose body is a stream (SSE, audio): documented in /openapi.json, never buffered.

spectree's `validate` wrapper reads the whole response body to validate it (`get_data()`),
which would hold an event stream until it ends and an hour of audio in memory. `documented`
registers the route's request and response models with spectree but serves the function
unwrapped; such views parse their query themselves (`parse_query`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from api.extensions import spec
from mina.errors import ValidationError

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)


def documented(**validate_options: Any) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        described = spec.validate(skip_validation=True, **validate_options)(func)
        # spectree finds a route's models through the view's `__wrapped__` chain
        setattr(func, "__wrapped__", described)  # noqa: B010
        return func

    return decorate


def parse_query(model: type[M]) -> M:
    try:
        return model.model_validate(request.args.to_dict())
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationError(f"{where}: {first['msg']}", code="invalid_query") from exc

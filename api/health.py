"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import services
from api.extensions import spec
from mina import db
from mina.errors import MinaError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    svc = services()
    checks: dict[str, str] = {}
    for name, probe in (("database", db.ping), ("storage", svc.storage.ping)):
        try:
            probe()
            checks[name] = "ok"
        except (MinaError, OSError, db.SQLAlchemyError) as exc:
            checks[name] = f"error: {exc}"
    checks["broker"] = _broker_check()
    ok = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if ok else "unavailable", "checks": checks}), 200 if ok else 503


def _broker_check() -> str:
    return services().dispatcher.ping()


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(spec.spec)

"""Operator API of outgoing webhooks (docs/webhooks.md): subscriptions, replay, dead letters.

Not `api.webhooks`, which receives providers' webhooks. Every route needs the operator token.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from spectree import Response as Resp

from api.auth import require_operator
from api.context import services
from api.extensions import spec
from api.schemas import MAX_EVENT_ID, error_responses
from api.webhooks_out_schemas import (
    DeliveryList,
    DeliveryQuery,
    DeliveryRetried,
    ReplayOut,
    ReplayQuery,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionOut,
)
from mina.db import session_scope
from mina.errors import NotFound, TransientError
from mina.models import Event
from mina.outbound import subscriptions
from mina.outbound.models import Delivery, Subscription

log = logging.getLogger(__name__)

bp = Blueprint("webhooks_out", __name__, url_prefix="/api/operator/webhooks")

ERRORS = error_responses(400, 401, 403, 404, 409)


@bp.before_request
def _operators_only() -> None:
    require_operator()


def _wake(ids: list[int]) -> None:
    """After the commit; the scheduler's webhooks job wakes them if the broker is down."""
    try:
        services().dispatcher.deliver_webhooks(ids)
    except TransientError as exc:
        log.warning("webhooks: %d delivery(ies) left for the scheduler: %s", len(ids), exc)


def _out(sub: Subscription, counts: dict[str, int]) -> dict[str, Any]:
    fields = SubscriptionOut.model_fields.keys() - {"deliveries"}
    out = {f: getattr(sub, f) for f in fields}
    for f in ("created_at", "paused_at"):
        out[f] = _iso(out[f])
    return {**out, "deliveries": counts}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() + "Z" if at is not None else None


def _one(subscription_id: str) -> Response:
    with session_scope() as session:
        sub = subscriptions.get(session, subscription_id)
        counts = subscriptions.counts(session, [sub.id])[sub.id]
        return jsonify(_out(sub, counts))


@bp.post("/subscriptions")
@spec.validate(json=SubscriptionCreate, resp=Resp(HTTP_201=SubscriptionCreated, **ERRORS))
def create() -> tuple[Response, int]:
    body = SubscriptionCreate.model_validate(request.get_json(silent=True) or {})
    options = body.model_dump(exclude={"url", "event_types", "secret", "description"})
    new = subscriptions.NewSubscription(
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        description=body.description,
        options=options,
    )
    with session_scope() as session:
        sub, secret = subscriptions.create(session, new)
        data = {**_out(sub, {}), "secret": secret}
    services().dispatcher.webhook_subscriptions_changed()
    return jsonify(data), 201


@bp.get("/subscriptions")
@spec.validate(resp=Resp(HTTP_200=SubscriptionList, **ERRORS))
def listing() -> Response:
    with session_scope() as session:
        subs = subscriptions.listing(session)
        counts = subscriptions.counts(session, [s.id for s in subs])
        return jsonify({"subscriptions": [_out(s, counts[s.id]) for s in subs]})


@bp.get("/subscriptions/<subscription_id>")
@spec.validate(resp=Resp(HTTP_200=SubscriptionOut, **ERRORS))
def detail(subscription_id: str) -> Response:
    return _one(subscription_id)


@bp.post("/subscriptions/<subscription_id>/pause")
@spec.validate(resp=Resp(HTTP_200=SubscriptionOut, **ERRORS))
def pause(subscription_id: str) -> Response:
    with session_scope() as session:
        subscriptions.pause(session, subscription_id, "paused by an operator")
    return _one(subscription_id)


@bp.post("/subscriptions/<subscription_id>/resume")
@spec.validate(resp=Resp(HTTP_200=SubscriptionOut, **ERRORS))
def resume(subscription_id: str) -> Response:
    with session_scope() as session:
        _, heads = subscriptions.resume(session, subscription_id)
    services().dispatcher.webhook_subscriptions_changed()
    _wake(heads)
    return _one(subscription_id)


@bp.delete("/subscriptions/<subscription_id>")
@spec.validate(resp=Resp(HTTP_204=None, **ERRORS))
def delete(subscription_id: str) -> tuple[str, int]:
    with session_scope() as session:
        subscriptions.delete(session, subscription_id)
    return "", 204


@bp.post("/subscriptions/<subscription_id>/replay")
@spec.validate(query=ReplayQuery, resp=Resp(HTTP_202=ReplayOut, **ERRORS))
def replay(subscription_id: str) -> tuple[Response, int]:
    q = ReplayQuery.model_validate(request.args.to_dict())
    with session_scope() as session:
        count, heads = subscriptions.replay(session, subscription_id, q.after)
    _wake(heads)
    return jsonify({"replayed": count}), 202


@bp.get("/deliveries")
@spec.validate(query=DeliveryQuery, resp=Resp(HTTP_200=DeliveryList, **ERRORS))
def deliveries() -> Response:
    q = DeliveryQuery.model_validate(request.args.to_dict())
    with session_scope() as session:
        rows = subscriptions.deliveries(
            session,
            status=q.status,
            subscription_id=q.subscription_id,
            limit=q.limit,
            before=q.before,
        )
        return jsonify({"deliveries": [_delivery(d, e) for d, e in rows]})


def _delivery(d: Delivery, e: Event) -> dict[str, Any]:
    return {
        "id": d.id,
        "subscription_id": d.subscription_id,
        "event_id": d.event_id,
        "event_type": e.type,
        "conversation_id": e.conversation_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at),
        "last_error": d.last_error,
        "last_status": d.last_status,
        "created_at": _iso(d.created_at),
        "delivered_at": _iso(d.delivered_at),
    }


@bp.post("/deliveries/<delivery_id>/retry")
@spec.validate(resp=Resp(HTTP_202=DeliveryRetried, **ERRORS))
def retry(delivery_id: str) -> tuple[Response, int]:
    if not delivery_id.isdigit() or int(delivery_id) > MAX_EVENT_ID:
        raise NotFound(f"no webhook delivery {delivery_id}")
    with session_scope() as session:
        row = subscriptions.retry_dead(session, int(delivery_id))
        out = {"id": row.id, "status": row.status}
    _wake([row.id])
    return jsonify(out), 202

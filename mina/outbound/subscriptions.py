"""Subscriptions: create, list, pause, resume, delete, replay, and dead letters' retry.

Services take a session; callers own the transaction and send the returned delivery ids to the
`Sender` after the commit (messages are hints, the rows are the truth).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mina.db import utcnow
from mina.errors import Conflict, NotFound, ValidationError
from mina.models import Event
from mina.outbound import signing
from mina.outbound.models import ACTIVE, DEAD, DELIVERED, PAUSED, PENDING, Delivery, Subscription

log = logging.getLogger(__name__)

ALL = "*"
_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass
class NewSubscription:
    url: str
    event_types: list[str]
    secret: str | None = None
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url: must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValidationError("url: credentials in the URL are not accepted; use the signature")
    return url


def check_types(types: list[str]) -> list[str]:
    if not types:
        raise ValidationError('event_types: at least one event type, or "*" for all')
    for t in types:
        if t != ALL and not _TYPE.match(t):
            raise ValidationError(f"event_types: {t!r} is not an event type")
    return sorted(set(types))


def create(session: Session, new: NewSubscription) -> tuple[Subscription, str]:
    """The subscription and its secret (shown once). It gets the events after the newest
    ledger id of now; older ones only through a replay."""
    secret = new.secret or signing.new_secret()
    signing.key_of(secret)
    sub = Subscription(
        url=check_url(new.url),
        secret=secret,
        event_types=check_types(new.event_types),
        description=new.description,
        cursor=session.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0,
        **new.options,
    )
    session.add(sub)
    session.flush()  # the column defaults are filled in
    if sub.retry_min_seconds > sub.retry_max_seconds:
        raise ValidationError("retry_min_seconds: larger than retry_max_seconds")
    log.info("webhook subscription %s created for %s", sub.id, ", ".join(sub.event_types))
    return sub, secret


def get(session: Session, subscription_id: str, *, lock: bool = False) -> Subscription:
    q = select(Subscription).where(Subscription.id == subscription_id)
    sub = session.scalar(q.with_for_update() if lock else q)
    if sub is None:
        raise NotFound(f"no webhook subscription {subscription_id}")
    return sub


def listing(session: Session) -> list[Subscription]:
    return list(session.scalars(select(Subscription).order_by(Subscription.created_at)))


def counts(session: Session, subscription_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per subscription: how many deliveries are in each status."""
    out: dict[str, dict[str, int]] = {sid: {} for sid in subscription_ids}
    rows = session.execute(
        select(Delivery.subscription_id, Delivery.status, func.count())
        .where(Delivery.subscription_id.in_(subscription_ids))
        .group_by(Delivery.subscription_id, Delivery.status)
    )
    for sid, status, n in rows:
        out[sid][status] = int(n)
    return out


def pause(session: Session, subscription_id: str, reason: str) -> Subscription:
    sub = get(session, subscription_id, lock=True)
    if sub.status != PAUSED:
        sub.status, sub.paused_reason, sub.paused_at = PAUSED, reason, utcnow()
        sub.updated_at = utcnow()
        log.warning("webhook subscription %s paused: %s", sub.id, reason)
    return sub


def resume(session: Session, subscription_id: str) -> tuple[Subscription, list[int]]:
    """Active again, failures forgiven; returns the stream heads to send."""
    sub = get(session, subscription_id, lock=True)
    sub.status, sub.paused_reason, sub.paused_at = ACTIVE, None, None
    sub.consecutive_failures, sub.updated_at = 0, utcnow()
    session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == sub.id, Delivery.status == PENDING)
        .values(next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return sub, heads(session, sub.id)


def delete(session: Session, subscription_id: str) -> None:
    session.delete(get(session, subscription_id, lock=True))


def heads(session: Session, subscription_id: str) -> list[int]:
    """The oldest pending delivery of each of the subscription's streams."""
    rows = session.execute(
        select(Delivery.stream, func.min(Delivery.event_id))
        .where(Delivery.subscription_id == subscription_id, Delivery.status == PENDING)
        .group_by(Delivery.stream)
    ).all()
    if not rows:
        return []
    return list(
        session.scalars(
            select(Delivery.id).where(
                Delivery.subscription_id == subscription_id,
                Delivery.event_id.in_([e for _, e in rows]),
            )
        )
    )


def matching(types: list[str]) -> Any:
    """A filter on `Event.type` for a subscription's types."""
    return Event.id.isnot(None) if ALL in types else Event.type.in_(types)


def replay(session: Session, subscription_id: str, after: int) -> tuple[int, list[int]]:
    """Send again every subscribed event after ledger id `after`: delivered or dead rows go
    back to pending with their attempts reset, missing rows are added (the fan-out skips them
    later). Returns the count and the heads to send."""
    sub = get(session, subscription_id, lock=True)
    now = utcnow()
    events = session.execute(
        select(Event.id, Event.conversation_id)
        .where(Event.id > after, matching(sub.event_types))
        .order_by(Event.id)
    ).all()
    have = dict(
        session.execute(
            select(Delivery.event_id, Delivery.status).where(
                Delivery.subscription_id == sub.id, Delivery.event_id > after
            )
        ).all()
    )
    session.execute(
        update(Delivery)
        .where(
            Delivery.subscription_id == sub.id,
            Delivery.event_id > after,
            Delivery.status.in_((DELIVERED, DEAD)),
        )
        .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    for event_id, conversation_id in events:
        if event_id not in have:
            session.add(
                Delivery(
                    subscription_id=sub.id,
                    event_id=event_id,
                    stream=conversation_id or "",
                    next_attempt_at=now,
                )
            )
    session.flush()
    log.info("webhook subscription %s: %d event(s) after %d replayed", sub.id, len(events), after)
    return len(events), heads(session, sub.id)


def retry_dead(session: Session, delivery_id: int) -> Delivery:
    row = session.scalar(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    if row.status != DEAD:
        raise Conflict(f"webhook delivery {delivery_id} is {row.status}, not dead")
    row.status, row.attempts, row.next_attempt_at = PENDING, 0, utcnow()
    return row


def deliveries(
    session: Session,
    *,
    status: str | None,
    subscription_id: str | None,
    limit: int,
    before: int | None = None,
) -> list[tuple[Delivery, Event]]:
    q = select(Delivery, Event).join(Event, Event.id == Delivery.event_id)
    if status:
        q = q.where(Delivery.status == status)
    if subscription_id:
        q = q.where(Delivery.subscription_id == subscription_id)
    if before:
        q = q.where(Delivery.id < before)
    return [(d, e) for d, e in session.execute(q.order_by(Delivery.id.desc()).limit(limit))]

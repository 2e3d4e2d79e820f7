"""Fan-out: ledger events → one `webhook_outbox` row per matching subscription.

Each active subscription keeps a cursor (the last ledger id it looked at). A fan-out takes the
events after it, adds a row per subscribed event (unique on subscription and event: running twice
adds nothing) and moves the cursor, but never past an event younger than `SETTLE_SECONDS`: ids
are allocated at insert and committed later, so a young id can still have an older neighbour in
flight (an uncommitted transaction of another conversation). Young events are looked at again by
the next fan-out; their rows already exist.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mina.db import utcnow
from mina.models import Event
from mina.outbound.models import ACTIVE, Delivery, Subscription
from mina.outbound.subscriptions import matching

log = logging.getLogger(__name__)

SETTLE_SECONDS = 5.0


def fan_out(session: Session, limit: int = 1000) -> list[int]:
    """Add the rows of every active subscription; returns the ids of the new rows."""
    subs = session.scalars(
        select(Subscription)
        .where(Subscription.status == ACTIVE)
        .order_by(Subscription.id)
        .with_for_update()  # one fan-out per subscription at a time: the cursor is its own
    ).all()
    settled = utcnow() - timedelta(seconds=SETTLE_SECONDS)
    new: list[int] = []
    for sub in subs:
        events = session.execute(
            select(Event.id, Event.conversation_id, Event.type, Event.created_at)
            .where(Event.id > sub.cursor)
            .order_by(Event.id)
            .limit(limit)
        ).all()
        if not events:
            continue
        wanted = [e for e in events if _wants(sub.event_types, e.type)]
        have = set(
            session.scalars(
                select(Delivery.event_id).where(
                    Delivery.subscription_id == sub.id,
                    Delivery.event_id.in_([e.id for e in wanted]),
                )
            )
        )
        rows = [
            Delivery(subscription_id=sub.id, event_id=e.id, stream=e.conversation_id or "")
            for e in wanted
            if e.id not in have
        ]
        session.add_all(rows)
        cursor = sub.cursor
        for e in events:
            if e.created_at > settled:
                break
            cursor = e.id
        sub.cursor = cursor
        session.flush()
        new += [r.id for r in rows]
    if new:
        log.debug("webhooks: %d delivery row(s) added", len(new))
    return new


def _wants(types: list[str], type_: str) -> bool:
    return "*" in types or type_ in types


__all__ = ["SETTLE_SECONDS", "fan_out", "matching"]

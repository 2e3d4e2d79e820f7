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

from sqlalchemy import exists, func, insert, literal, select
from sqlalchemy.orm import Session

from mina.db import utcnow
from mina.models import Event
from mina.outbound.models import ACTIVE, PENDING, Delivery, Subscription
from mina.outbound.subscriptions import matching

log = logging.getLogger(__name__)

SETTLE_SECONDS = 5.0


def fan_out(session: Session, limit: int = 1000) -> list[int]:
    """Add the rows of every active subscription; returns the first new row of each stream
    (the others follow it: a delivery's outcome sends the next one of its stream)."""
    subs = session.scalars(
        select(Subscription)
        .where(Subscription.status == ACTIVE)
        .order_by(Subscription.id)
        .with_for_update()  # one fan-out per subscription at a time: the cursor is its own
    ).all()
    now = utcnow()
    settled = now - timedelta(seconds=SETTLE_SECONDS)
    new: list[int] = []
    for sub in subs:
        after = Event.id > sub.cursor
        missing = (
            select(
                literal(sub.id),
                Event.id,
                func.coalesce(Event.conversation_id, ""),
                literal(PENDING),
                literal(0),
                literal(now),
                literal(now),
            )
            .where(
                after,
                matching(sub.event_types),
                ~exists().where(Delivery.subscription_id == sub.id, Delivery.event_id == Event.id),
            )
            .order_by(Event.id)
            .limit(limit)
        )
        cols = ["subscription_id", "event_id", "stream", "status", "attempts"]
        added = session.execute(
            insert(Delivery)
            .from_select([*cols, "next_attempt_at", "created_at"], missing)
            .returning(Delivery.id, Delivery.stream, Delivery.event_id)
        ).all()
        # The cursor stops before the first event that may still have an older one in flight.
        young = session.scalar(select(func.min(Event.id)).where(after, Event.created_at > settled))
        top = session.scalar(select(func.max(Event.id)).where(after))
        if top is not None:
            cursor = young - 1 if young is not None else top
            if len(added) == limit:  # a full page: the next run continues after it
                cursor = min(cursor, max(a.event_id for a in added))
            sub.cursor = max(sub.cursor, cursor)
        first: dict[str, tuple[int, int]] = {}
        for row_id, stream, event_id in added:  # the first of each stream may be its head
            if stream not in first or event_id < first[stream][1]:
                first[stream] = (row_id, event_id)
        new += [row_id for row_id, _ in first.values()]
    if new:
        log.debug("webhooks: %d stream(s) woken", len(new))
    return new

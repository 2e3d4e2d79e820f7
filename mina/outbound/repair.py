"""The scheduler's webhook job: what a lost message or a crash leaves behind (DESIGN §8).

Fans out what no process fanned out, takes back rows whose sender died mid-POST (lease expired:
they are sent again, with the same `webhook-id`), and wakes stream heads that are due since
`grace` seconds and whose message was lost; prunes rows delivered more than
`KEEP_DELIVERED_DAYS` ago. Bounded per run; every step idempotent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import aliased

from mina.db import session_scope, utcnow
from mina.errors import TransientError
from mina.outbound.delivery import Sender
from mina.outbound.fanout import fan_out
from mina.outbound.models import (
    ACTIVE,
    DELIVERED,
    OPEN,
    PENDING,
    SENDING,
    Delivery,
    Subscription,
)

log = logging.getLogger(__name__)

#: Delivered rows are kept this long (counts, the dashboard), then pruned; a replay adds them
#: back from the ledger.
KEEP_DELIVERED_DAYS = 7.0


def repair(sender: Sender, *, batch: int = 100, grace: float = 15.0) -> int:
    now = utcnow()
    with session_scope() as session:
        added = fan_out(session, limit=batch * 10)
        taken = list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.status == SENDING, Delivery.lease_until < now)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        if taken:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(taken), Delivery.status == SENDING)
                .values(status=PENDING, lease_until=None, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
        earlier = aliased(Delivery)
        due = list(
            session.scalars(
                select(Delivery.id)
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .where(
                    Subscription.status == ACTIVE,
                    Delivery.status == PENDING,
                    Delivery.next_attempt_at <= now - timedelta(seconds=grace),
                    ~exists().where(
                        and_(
                            earlier.subscription_id == Delivery.subscription_id,
                            earlier.stream == Delivery.stream,
                            earlier.status.in_(OPEN),
                            earlier.event_id < Delivery.event_id,
                        )
                    ),
                )
                .order_by(Delivery.next_attempt_at)
                .limit(batch)
            )
        )
    if taken:
        log.warning("webhooks: %d delivery(ies) whose sender stopped answering", len(taken))
    wake = sorted(set(added) | set(taken) | set(due))
    if wake:
        try:
            sender.deliver(wake)
        except TransientError as exc:  # the rows stay due: the next run tries again
            log.warning("webhooks: %d delivery(ies) not woken: %s", len(wake), exc)
            return 0
    return len(wake) + prune(now - timedelta(days=KEEP_DELIVERED_DAYS), batch * 10)


def prune(before: datetime, limit: int) -> int:
    """Delete up to `limit` rows delivered before `before`."""
    with session_scope() as session:
        old = list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.status == DELIVERED, Delivery.delivered_at < before)
                .limit(limit)
            )
        )
        if old:
            session.execute(delete(Delivery).where(Delivery.id.in_(old)))
            log.info("webhooks: %d delivered row(s) pruned", len(old))
    return len(old)

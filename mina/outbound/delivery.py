"""Sending one delivery: claim, sign, POST, record the outcome, say what to send next.

In order per stream (a subscription and a conversation): only the oldest open row of a stream is
sent; the others wait until it is delivered or dead. At least once: a row is `sending` under a
lease while its POST runs; a crash leaves it to the repair job, which sends it again with the
same `webhook-id` (the ledger id). The subscription's `max_concurrency` caps its rows `sending`
at once (checked under its row lock), so one slow receiver holds at most that many worker
threads. Failures back off exponentially with jitter up to `retry_max_seconds`; after
`max_attempts` the row is dead (a dead letter, retried by an operator); after
`pause_after_failures` failures in a row, or a 410, the subscription pauses.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import httpx2
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mina import events
from mina.db import session_scope, utcnow
from mina.models import Event
from mina.outbound import signing
from mina.outbound.models import (
    ACTIVE,
    DEAD,
    DELIVERED,
    OPEN,
    PAUSED,
    PENDING,
    SENDING,
    Delivery,
    Subscription,
)

log = logging.getLogger(__name__)

#: A lease outlives the POST's timeout by this much before the repair job takes the row back.
LEASE_GRACE_SECONDS = 30.0
#: A capped subscription's message comes back after about this long (jittered).
BUSY_DELAY_SECONDS = 0.5


class Sender(Protocol):
    """Wakes senders (Dramatiq on the `network` queue); raises `TransientError` if it cannot."""

    def deliver(self, delivery_ids: list[int], delay: float = 0.0) -> None: ...

    def fan_out(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What `deliver` did and what the caller sends next (after nothing is locked)."""

    state: str  # delivered, retry, dead, paused, busy, skipped
    next_ids: tuple[int, ...] = ()
    delay: float = 0.0


def backoff(attempts: int, low: float, high: float) -> float:
    """Exponential from `low`, capped at `high`, jittered down by up to half."""
    ceiling = min(high, low * 2 ** max(0, attempts - 1))
    return ceiling * random.uniform(0.5, 1.0)


_local = threading.local()


def _client() -> httpx2.Client:
    client: httpx2.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx2.Client(follow_redirects=False)
        _local.client = client
    return client


def deliver(delivery_id: int) -> Outcome:
    claimed = _claim(delivery_id)
    if isinstance(claimed, Outcome):
        return claimed
    url, timeout, msg_id, body, secret = claimed
    stamp = int(time.time())
    status: int | None = None
    error: str | None = None
    try:
        r = _client().post(
            url,
            content=body,
            headers=signing.headers(secret, msg_id, stamp, body),
            timeout=timeout,
        )
        status = r.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}: {r.text[:200]}"
    except httpx2.TimeoutException:
        error = f"timed out after {timeout:g}s"
    except httpx2.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    return _record(delivery_id, status, error)


def _claim(delivery_id: int) -> Outcome | tuple[str, float, str, bytes, str]:
    now = utcnow()
    with session_scope() as session:
        row = session.get(Delivery, delivery_id)
        if row is None or row.status != PENDING or row.next_attempt_at > now:
            return Outcome("skipped")
        sub = session.scalar(
            select(Subscription).where(Subscription.id == row.subscription_id).with_for_update()
        )
        if sub is None or sub.status != ACTIVE:
            return Outcome("skipped")
        earlier = session.scalar(
            select(func.count()).where(
                Delivery.subscription_id == row.subscription_id,
                Delivery.stream == row.stream,
                Delivery.status.in_(OPEN),
                Delivery.event_id < row.event_id,
            )
        )
        if earlier:  # not the head of its stream: the head's outcome sends this one
            return Outcome("skipped")
        busy = session.scalar(
            select(func.count()).where(
                Delivery.subscription_id == sub.id,
                Delivery.status == SENDING,
                Delivery.lease_until > now,
            )
        )
        if busy and busy >= sub.max_concurrency:
            delay = BUSY_DELAY_SECONDS * random.uniform(1.0, 2.0)
            return Outcome("busy", (delivery_id,), delay)
        claimed = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == PENDING)
            .values(
                status=SENDING,
                attempts=Delivery.attempts + 1,
                lease_until=now + timedelta(seconds=sub.timeout_seconds + LEASE_GRACE_SECONDS),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return Outcome("skipped")
        event = session.get(Event, row.event_id)
        if event is None:  # deleted with its conversation: nothing left to send
            session.delete(row)
            return Outcome("skipped")
        body = json.dumps(events.as_message(event), separators=(",", ":")).encode()
        return sub.url, sub.timeout_seconds, str(event.id), body, sub.secret


def _record(delivery_id: int, status: int | None, error: str | None) -> Outcome:
    now = utcnow()
    with session_scope() as session:
        row = session.scalar(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
        if row is None or row.status != SENDING:  # the repair took it back meanwhile
            return Outcome("skipped")
        sub = session.scalar(
            select(Subscription).where(Subscription.id == row.subscription_id).with_for_update()
        )
        if sub is None:
            return Outcome("skipped")
        row.last_status, row.lease_until = status, None
        if error is None:
            row.status, row.delivered_at, row.last_error = DELIVERED, now, None
            sub.consecutive_failures = 0
            return Outcome("delivered", _next_in_stream(session, row))
        row.last_error = error
        sub.consecutive_failures += 1
        where = f"event {row.event_id} to {sub.url}"
        if status == 410:
            row.status, row.next_attempt_at = PENDING, now
            _pause(sub, "the receiver answered 410 Gone")
            return Outcome("paused")
        if sub.consecutive_failures >= sub.pause_after_failures:
            _pause(sub, f"{sub.consecutive_failures} failures in a row; last: {error}")
        if row.attempts >= sub.max_attempts:
            row.status = DEAD
            log.warning("webhook %s dead after %d attempt(s): %s", where, row.attempts, error)
            nxt = _next_in_stream(session, row) if sub.status == ACTIVE else ()
            return Outcome("dead", nxt)
        delay = backoff(row.attempts, sub.retry_min_seconds, sub.retry_max_seconds)
        row.status, row.next_attempt_at = PENDING, now + timedelta(seconds=delay)
        log.info(
            "webhook %s failed (attempt %d), again in %.1fs: %s", where, row.attempts, delay, error
        )
        if sub.status != ACTIVE:
            return Outcome("paused")
        return Outcome("retry", (row.id,), delay)


def _pause(sub: Subscription, reason: str) -> None:
    if sub.status == PAUSED:
        return
    sub.status, sub.paused_reason, sub.paused_at, sub.updated_at = (
        PAUSED,
        reason,
        utcnow(),
        utcnow(),
    )
    log.warning("webhook subscription %s paused: %s", sub.id, reason)


def _next_in_stream(session: Session, row: Delivery) -> tuple[int, ...]:
    nxt = session.scalar(
        select(Delivery.id)
        .where(
            Delivery.subscription_id == row.subscription_id,
            Delivery.stream == row.stream,
            Delivery.status == PENDING,
        )
        .order_by(Delivery.event_id)
        .limit(1)
    )
    return (nxt,) if nxt is not None else ()

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import httpx2
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased

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
#: A message turned away by the cap comes back after about this long (jittered), in case no
#: finishing delivery hands it the freed slot first (which is what usually happens).
BUSY_DELAY_SECONDS = 2.0


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
    #: the next row of the same stream, which `run` sends in the same thread
    follow: int | None = None
    #: (subscription, stream) whose next row to look for again after the commit (see `deliver`)
    recheck: tuple[str, str] | None = None


Wake = Callable[[list[int], float], None]


def run(delivery_id: int, wake: Wake, *, budget_seconds: float = 5.0, most: int = 100) -> int:
    """Deliver, then keep going down the stream in this thread while that stays quick (no
    message round trip between two events of a conversation); whatever else is to be sent is
    handed to `wake` at once. Returns how many were delivered."""
    started = time.monotonic()
    current, delivered = delivery_id, 0
    for n in range(most):
        out = deliver(current, slot_held=n > 0)
        delivered += out.state == "delivered"
        if out.next_ids:
            wake(list(out.next_ids), out.delay)
        if out.follow is None:
            break
        if time.monotonic() - started > budget_seconds:
            wake([out.follow], 0.0)
            break
        current = out.follow
    return delivered


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


def deliver(delivery_id: int, *, slot_held: bool = False) -> Outcome:
    """Send one row if it is due and first in its stream. `slot_held`: the caller just
    finished the previous row of this stream and passes its slot on (no cap check)."""
    claimed = _claim(delivery_id, slot_held)
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
    out = _record(delivery_id, status, error)
    if out.recheck is not None and out.follow is None:
        # A fan-out that committed while this outcome was being recorded had its first row
        # turned away (this one was still open) and was not seen above: look once more, now
        # that both are committed, so no row waits for the scheduler's repair.
        with session_scope() as session:
            own = due_heads(session, out.recheck[0], 1, stream=out.recheck[1])
        if own:
            return Outcome(out.state, out.next_ids, out.delay, follow=own[0])
    return out


def _claim(delivery_id: int, slot_held: bool) -> Outcome | tuple[str, float, str, bytes, str]:
    now = utcnow()
    with session_scope() as session:
        row = session.get(Delivery, delivery_id)
        if row is None or row.status != PENDING or row.next_attempt_at > now:
            return Outcome("skipped")
        q = select(Subscription).where(Subscription.id == row.subscription_id)
        sub = session.scalar(q if slot_held else q.with_for_update())
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
        busy = (
            0
            if slot_held
            else session.scalar(
                select(func.count()).where(
                    Delivery.subscription_id == sub.id,
                    Delivery.status == SENDING,
                    Delivery.lease_until > now,
                )
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
        row.last_status, row.lease_until = status, None
        if error is None:
            row.status, row.delivered_at, row.last_error = DELIVERED, now, None
            session.execute(  # no write (and no wait on the row's lock) when already 0
                update(Subscription)
                .where(
                    Subscription.id == row.subscription_id, Subscription.consecutive_failures > 0
                )
                .values(consecutive_failures=0)
                .execution_options(synchronize_session=False)
            )
            own, others = _successors(session, row)
            key = (row.subscription_id, row.stream)
            return Outcome("delivered", others, follow=own, recheck=key)
        sub = session.scalar(
            select(Subscription).where(Subscription.id == row.subscription_id).with_for_update()
        )
        if sub is None:
            return Outcome("skipped")
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
            own, others = _successors(session, row)
            key = (row.subscription_id, row.stream)
            return Outcome(
                "dead", others, follow=own, recheck=key if sub.status == ACTIVE else None
            )
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


def _successors(session: Session, row: Delivery) -> tuple[int | None, tuple[int, ...]]:
    """What to send now that `row` left its slot: the head of its stream, and heads of other
    streams that were turned away while the subscription was at its cap."""
    sub = session.get(Subscription, row.subscription_id)
    if sub is None or sub.status != ACTIVE:
        return None, ()
    own = due_heads(session, sub.id, 1, stream=row.stream)
    if own:  # the slot passes to it; others get theirs when a stream runs dry
        return own[0], ()
    in_flight = session.scalar(
        select(func.count()).where(
            Delivery.subscription_id == sub.id,
            Delivery.status == SENDING,
            Delivery.lease_until > utcnow(),
        )
    )
    free = sub.max_concurrency - int(in_flight or 0)
    others = due_heads(session, sub.id, free, exclude=row.stream) if free > 0 else []
    return None, tuple(others)


def due_heads(
    session: Session,
    subscription_id: str,
    limit: int,
    *,
    stream: str | None = None,
    exclude: str | None = None,
) -> list[int]:
    """Pending rows that are due and first in their stream, oldest first."""
    earlier = aliased(Delivery)
    q = select(Delivery.id).where(
        Delivery.subscription_id == subscription_id,
        Delivery.status == PENDING,
        Delivery.next_attempt_at <= utcnow(),
        ~exists().where(
            earlier.subscription_id == Delivery.subscription_id,
            earlier.stream == Delivery.stream,
            earlier.status.in_(OPEN),
            earlier.event_id < Delivery.event_id,
        ),
    )
    if stream is not None:
        q = q.where(Delivery.stream == stream)
    if exclude is not None:
        q = q.where(Delivery.stream != exclude)
    return list(session.scalars(q.order_by(Delivery.event_id).limit(limit)))

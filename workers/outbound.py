"""Outgoing webhooks on Dramatiq's `network` queue (docs/webhooks.md): fan-out and delivery.

`install()` makes this process wake the fan-out after every commit that recorded ledger events
(the web process and workers call it): a daemon thread coalesces the commits and sends one
`webhook_fan_out` message at a time, so a committing transaction never waits on the broker and
a burst of events is one fan-out. The scheduler's `webhooks` job repairs what a lost message
leaves behind.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence

import dramatiq
import redis
from dramatiq.errors import ConnectionError as BrokerConnectionError
from dramatiq.middleware import TimeLimitExceeded
from sqlalchemy import select

from mina import events
from mina.db import session_scope
from mina.errors import TransientError
from mina.outbound import delivery, fanout, repair
from mina.outbound.models import ACTIVE, Subscription
from mina.relay import Message
from mina.settings import Settings, get_settings
from workers.broker import broker

log = logging.getLogger(__name__)

#: A capped POST timeout (the API allows 30 s) plus the time to record its outcome.
_TIME_LIMIT_MS = 60_000


class DramatiqSender:
    def deliver(self, delivery_ids: list[int], delay: float = 0.0) -> None:
        try:
            for delivery_id in delivery_ids:
                webhook_deliver.send_with_options(
                    args=(delivery_id,), delay=int(delay * 1000) or None
                )
        except (BrokerConnectionError, redis.exceptions.ConnectionError, OSError) as exc:
            raise TransientError(f"broker unreachable: {exc}") from exc

    def fan_out(self) -> None:
        try:
            webhook_fan_out.send()
        except (BrokerConnectionError, redis.exceptions.ConnectionError, OSError) as exc:
            raise TransientError(f"broker unreachable: {exc}") from exc


sender = DramatiqSender()


@dramatiq.actor(broker=broker, queue_name="network", max_retries=3, min_backoff=500)
def webhook_fan_out() -> None:
    with session_scope() as session:
        ids = fanout.fan_out(session)
    sender.deliver(ids)


#: Threads of this process that may be in a webhook POST at once: one fewer than the worker's
#: (MINA_WORKER_THREADS), so receivers, however slow, always leave a thread to the pipeline.
_posting = threading.BoundedSemaphore(max(1, get_settings().worker_threads - 1))


@dramatiq.actor(broker=broker, queue_name="network", max_retries=0, time_limit=_TIME_LIMIT_MS)
def webhook_deliver(delivery_id: int) -> None:
    if not _posting.acquire(blocking=False):  # come back soon rather than hold this thread
        sender.deliver([delivery_id], random.uniform(0.2, 0.5))
        return
    try:
        delivery.run(delivery_id, sender.deliver)
    except TimeLimitExceeded:  # left `sending`: the repair job takes it back after its lease
        log.warning("webhook delivery %s: time limit exceeded", delivery_id)
    finally:
        _posting.release()


def repair_job(settings: Settings) -> Callable[[], int]:
    """The scheduler's `webhooks` job."""
    return lambda: repair.repair(sender, batch=settings.scheduler_batch_size)


class _Kicker:
    """Coalesces commits into fan-out messages; sends none while no subscription is active."""

    def __init__(self, recheck: float = 1.0) -> None:
        self._recheck = recheck
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._active_until = 0.0
        self._active = False

    def __call__(self, messages: Sequence[Message]) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="mina-webhooks", daemon=True)
            self._thread.start()
        self._wake.set()

    def changed(self) -> None:
        """Subscriptions changed in this process: look again at the next commit."""
        self._active_until = 0.0

    def _subscribed(self) -> bool:
        now = time.monotonic()
        if now >= self._active_until:
            with session_scope() as session:
                self._active = (
                    session.scalar(
                        select(Subscription.id).where(Subscription.status == ACTIVE).limit(1)
                    )
                    is not None
                )
            self._active_until = now + self._recheck
        return self._active

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                if self._subscribed():
                    sender.fan_out()
            except Exception:  # the one boundary: the thread outlives a bad kick (the
                # scheduler's job fans out whatever this one did not)
                log.exception("webhooks: fan-out not woken")
            time.sleep(0.02)


_kicker = _Kicker()
_installed: list[Callable[[], None]] = []


def install() -> None:
    """Wake the fan-out after this process's commits (once per process)."""
    if not _installed:
        _installed.append(events.watch(_kicker))


def subscriptions_changed() -> None:
    """A subscription was created or resumed here: this process's next commit fans out even
    if it saw none active a moment ago (other processes see it within `recheck`)."""
    _kicker.changed()


install()  # every process that loads these actors wakes the fan-out after its commits

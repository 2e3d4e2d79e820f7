"""How many messages wait in each queue of the broker (the operator's stats)."""

from __future__ import annotations

import logging

import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from workers.broker import QUEUES, broker

log = logging.getLogger(__name__)

Depths = dict[str, dict[str, int | None]]


def queue_depths() -> Depths | None:
    """Per queue: `ready` (not yet taken), `in_progress` (taken, not acked), `delayed` (waiting
    for a retry's backoff), `dead` (dead-lettered). None if the broker cannot be asked."""
    try:
        if isinstance(broker, RedisBroker):
            return {q: _redis(broker, q) for q in QUEUES}
        if isinstance(broker, StubBroker):
            return {q: _stub(broker, q) for q in QUEUES}
        if isinstance(broker, RabbitmqBroker):
            return {q: _rabbitmq(broker, q) for q in QUEUES}
    except (redis.RedisError, OSError) as exc:
        log.warning("queue depths unavailable: %s", exc)
    return None


def _redis(b: RedisBroker, queue: str) -> dict[str, int | None]:
    name = f"{b.namespace}:{queue}"
    pipe = b.client.pipeline(transaction=False)
    pipe.llen(name)
    pipe.hlen(f"{name}.msgs")
    pipe.hlen(f"{name}.DQ.msgs")
    pipe.zcard(f"{name}.XQ")
    ready, unacked, delayed, dead = (int(n) for n in pipe.execute())
    return {
        "ready": ready,
        "in_progress": max(0, unacked - ready),
        "delayed": delayed,
        "dead": dead,
    }


def _stub(b: StubBroker, queue: str) -> dict[str, int | None]:
    main = b.queues[queue]
    delayed = b.queues.get(f"{queue}.DQ")
    return {
        "ready": main.qsize(),
        "in_progress": max(0, main.unfinished_tasks - main.qsize()),
        "delayed": delayed.qsize() if delayed is not None else 0,
        "dead": len(b.dead_letters_by_queue.get(queue, [])),
    }


def _rabbitmq(b: RabbitmqBroker, queue: str) -> dict[str, int | None]:
    ready, delayed, dead = b.get_queue_message_counts(queue)
    return {"ready": ready, "in_progress": None, "delayed": delayed, "dead": dead}

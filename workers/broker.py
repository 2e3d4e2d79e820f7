"""The one place the Dramatiq broker is built.

`MINA_BROKER_URL` decides: `redis://…` → RedisBroker, `amqp://…` → RabbitmqBroker, unset → the
in-process StubBroker of the embedded mode. Middleware is listed explicitly. GroupCallbacks gets
a backend every process shares (Redis); a StubBackend only when everything runs in one process,
because a barrier key missing from the backend counts as reached (DESIGN §10).
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    GroupCallbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.rate_limits.backend import RateLimiterBackend
from dramatiq.rate_limits.backends.stub import StubBackend

from mina.errors import ConfigurationError
from mina.settings import Settings, get_settings

log = logging.getLogger(__name__)

QUEUES = ("cpu", "network")


def rate_limiter_backend(settings: Settings) -> RateLimiterBackend:
    redis_url = settings.resolved_redis_url
    if redis_url:  # imported here, as the brokers below: the embedded mode never needs them
        from dramatiq.rate_limits.backends.redis import RedisBackend

        return RedisBackend(url=redis_url)
    if settings.broker_url:
        raise ConfigurationError(
            "MINA_REDIS_URL is required with a RabbitMQ broker: group callbacks need a "
            "backend shared by every worker process"
        )
    return StubBackend()


def asr_queue(settings: Settings) -> str:
    """The queue chunks are transcribed on: `cpu` for the local and simulated transcribers,
    `network` for remote providers."""
    return "cpu" if settings.transcriber in ("local", "simulated") else "network"


class WarmUp(Middleware):
    """A worker process that transcribes chunks loads their models (`mina.warm`) in a thread
    as it boots, so its first chunks do not queue for them. Not a process that only consumes
    other queues (it never needs them), nor the embedded mode's in-process workers (`mina
    process` and `mina dev` warm their process themselves)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, StubBroker):
            return
        queues = worker.consumer_whitelist
        if queues and asr_queue(self.settings) not in queues:
            return
        from mina import warm

        warm.start(self.settings)


def middleware(settings: Settings, backend: RateLimiterBackend) -> list[Middleware]:
    return [
        AgeLimit(max_age=24 * 3600 * 1000),
        TimeLimit(time_limit=int(settings.transcribe_time_limit_seconds * 1000), interval=250),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.chunk_max_attempts,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=settings.retry_max_backoff_ms,
        ),
        GroupCallbacks(backend),
        CurrentMessage(),
        WarmUp(settings),
    ]


def build_broker(settings: Settings | None = None) -> dramatiq.Broker:
    settings = settings or get_settings()
    url = settings.broker_url
    if url and not url.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        raise ConfigurationError(f"MINA_BROKER_URL must start with redis:// or amqp://: {url!r}")
    mw = middleware(settings, rate_limiter_backend(settings))
    broker: dramatiq.Broker
    if not url:
        broker = StubBroker(middleware=mw, fail_fast_default=False)
    elif url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, middleware=mw)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=mw)
    for queue in QUEUES:
        broker.declare_queue(queue)
    log.info("broker %s with queues %s", type(broker).__name__, ", ".join(QUEUES))
    return broker


broker = build_broker()
dramatiq.set_broker(broker)

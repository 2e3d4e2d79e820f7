"""The broker is built from MINA_BROKER_URL only, with middleware set explicitly."""

from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import GroupCallbacks, Retries, TimeLimit
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

from mina.errors import ConfigurationError
from mina.settings import Settings
from workers.broker import build_broker


def names(broker: object) -> list[str]:
    return [type(m).__name__ for m in broker.middleware]  # type: ignore[attr-defined]


def test_unset_url_gives_the_in_process_stub_broker() -> None:
    broker = build_broker(Settings(broker_url=None))
    assert isinstance(broker, StubBroker)
    group = next(m for m in broker.middleware if isinstance(m, GroupCallbacks))
    assert isinstance(group.rate_limiter_backend, StubBackend)
    assert {"cpu", "network"} <= broker.get_declared_queues()


def test_redis_url_gives_redis_broker_with_shared_redis_backend() -> None:
    broker = build_broker(Settings(broker_url="redis://127.0.0.1:6379/9"))
    assert isinstance(broker, RedisBroker)
    group = next(m for m in broker.middleware if isinstance(m, GroupCallbacks))
    assert isinstance(group.rate_limiter_backend, RedisBackend)
    for expected in (
        "AgeLimit",
        "TimeLimit",
        "Callbacks",
        "Pipelines",
        "Retries",
        "GroupCallbacks",
        "CurrentMessage",
        "WarmUp",
    ):
        assert expected in names(broker)
    retries = next(m for m in broker.middleware if isinstance(m, Retries))
    assert retries.max_retries == Settings().chunk_max_attempts
    assert retries.min_backoff == Settings().retry_min_backoff_ms
    limit = next(m for m in broker.middleware if isinstance(m, TimeLimit))
    assert limit.time_limit == Settings().transcribe_time_limit_seconds * 1000


def test_amqp_url_gives_rabbitmq_broker_and_needs_redis_for_groups() -> None:
    with pytest.raises(ConfigurationError, match="MINA_REDIS_URL"):
        build_broker(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672/"))
    broker = build_broker(
        Settings(
            broker_url="amqp://guest:guest@127.0.0.1:5672/", redis_url="redis://127.0.0.1:6379/9"
        )
    )
    assert isinstance(broker, RabbitmqBroker)
    assert {"cpu", "network"} <= broker.get_declared_queues()
    broker.close()


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="redis:// or amqp://"):
        build_broker(Settings(broker_url="kafka://localhost"))

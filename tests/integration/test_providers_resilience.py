"""mina.resilience and its stores: the breaker's rules on a given clock, in Redis and in memory,
the cap on concurrent calls, and which errors are retried."""

# ruff: noqa: F811 - pytest fixtures imported from tests.fakes.fixtures

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from mina.breakers import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerPolicy,
    BreakerStore,
    MemoryStore,
    RedisStore,
)
from mina.errors import PermanentError, TransientError
from mina.providers.openai_asr import OpenAITranscriber
from mina.resilience import CircuitOpen, Guard, breaker_states
from mina.settings import Settings
from tests.conftest import REDIS_URL
from tests.fakes.fixtures import fake_openai, openai_env  # noqa: F401 - fixtures
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.stack import wait_for

POLICY = BreakerPolicy(failures=5, reset_seconds=120.0, successes=2, probe_seconds=30.0)


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, clean_redis: None) -> Iterator[BreakerStore]:
    if request.param == "redis":
        yield RedisStore(redis.Redis.from_url(REDIS_URL))
    else:
        yield MemoryStore()


def test_breaker_opens_after_five_failures_half_opens_after_the_reset_closes_after_two(
    store: BreakerStore,
) -> None:
    t = 1000.0
    for n in range(4):
        assert store.allow("p", POLICY, t) == (True, 0.0)
        assert store.record("p", POLICY, False, t) == (CLOSED, CLOSED), n
    assert store.record("p", POLICY, True, t) == (CLOSED, CLOSED)  # a success resets the count
    for _ in range(4):
        store.record("p", POLICY, False, t)
    assert store.record("p", POLICY, False, t) == (CLOSED, OPEN)

    allowed, wait = store.allow("p", POLICY, t + 20)
    assert not allowed and wait == pytest.approx(100.0)
    assert store.state("p", POLICY, t + 20) == (OPEN, pytest.approx(100.0))
    assert store.state("p", POLICY, t + 120)[0] == HALF_OPEN

    # half-open: one probe at a time
    assert store.allow("p", POLICY, t + 120)[0]
    assert not store.allow("p", POLICY, t + 121)[0]
    assert store.record("p", POLICY, True, t + 121) == (HALF_OPEN, HALF_OPEN)
    assert store.allow("p", POLICY, t + 122)[0]
    assert store.record("p", POLICY, True, t + 122) == (HALF_OPEN, CLOSED)
    assert store.allow("p", POLICY, t + 123) == (True, 0.0)


def test_a_failed_probe_opens_the_circuit_again(store: BreakerStore) -> None:
    t = 5000.0
    for _ in range(5):
        store.record("p", POLICY, False, t)
    assert store.allow("p", POLICY, t + 121)[0]
    assert store.record("p", POLICY, False, t + 122) == (HALF_OPEN, OPEN)
    allowed, wait = store.allow("p", POLICY, t + 123)
    assert not allowed and wait == pytest.approx(119.0)
    assert store.state("other", POLICY, t)[0] == CLOSED  # per provider


def test_a_probe_whose_process_died_frees_its_slot(store: BreakerStore) -> None:
    policy = BreakerPolicy(failures=1, reset_seconds=1.0, successes=1, probe_seconds=0.05)
    store.record("p", policy, False, 0.0)
    assert store.allow("p", policy, 2.0)[0]  # the probe never reports back
    assert not store.allow("p", policy, 2.0)[0]
    # Its slot lapses after probe_seconds (Redis expires the key on its own clock).
    wait_for(lambda: store.allow("p", policy, 2.1)[0], timeout=5)


def test_slots_cap_callers_and_expire(store: BreakerStore) -> None:
    assert store.acquire_slot("p", "a", 2, 10.0, 0.0)
    assert store.acquire_slot("p", "b", 2, 10.0, 0.0)
    assert not store.acquire_slot("p", "c", 2, 10.0, 1.0)
    store.release_slot("p", "a")
    assert store.acquire_slot("p", "c", 2, 10.0, 1.0)
    assert store.acquire_slot("p", "d", 2, 10.0, 10.5)  # "b" expired (a crashed holder)


def _settings(fake: FakeOpenAI, **extra: Any) -> Settings:
    return Settings(**openai_env(fake, **extra))  # type: ignore[arg-type]


def test_the_guard_caps_concurrent_calls_from_many_threads(
    fake_openai: FakeOpenAI, clean_redis: None, tmp_path: Any
) -> None:
    import subprocess

    wav = tmp_path / "a.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=2",
            "-ar",
            "16000",
            "-ac",
            "1",
            str(wav),
        ],
        check=True,
    )
    fake_openai.latency["asr"] = 0.4
    settings = _settings(fake_openai, provider_concurrency=3, broker_url=REDIS_URL)
    transcriber = OpenAITranscriber(settings)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            transcriber.transcribe(wav)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(fake_openai.calls_to("asr")) == 12
    assert 2 <= fake_openai.max_concurrent["asr"] <= 3


def test_only_transient_errors_are_retried_and_retry_after_is_honoured(
    fake_openai: FakeOpenAI, clean_redis: None
) -> None:
    guard = Guard("openai", _settings(fake_openai, provider_attempts=3), MemoryStore())
    calls: list[str] = []

    def flaky() -> str:
        calls.append("x")
        if len(calls) < 3:
            raise TransientError("503")
        return "ok"

    assert guard.call(flaky) == "ok" and len(calls) == 3

    def refused() -> str:
        calls.append("p")
        raise PermanentError("400")

    with pytest.raises(PermanentError):
        guard.call(refused)
    assert calls.count("p") == 1


def test_an_open_circuit_is_refused_without_calling_and_without_retrying(
    fake_openai: FakeOpenAI, clean_redis: None
) -> None:
    settings = _settings(fake_openai, breaker_failures=2, provider_attempts=5, broker_url=REDIS_URL)
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise TransientError("connection refused")

    guard = Guard("openai", settings, RedisStore(redis.Redis.from_url(REDIS_URL)))
    with pytest.raises(CircuitOpen) as opened:
        guard.call(down)
    assert len(calls) == 2  # two failures opened it; the third try was refused, not made
    assert opened.value.retry_after == pytest.approx(settings.breaker_reset_seconds, abs=2)
    assert breaker_states(settings)["openai"] == OPEN
    with pytest.raises(CircuitOpen):
        guard.check()

"""What every remote provider shares: retries, a circuit breaker and a concurrency cap.

`guard(name, settings)` is the process's `Guard` for one provider. `Guard.call(fn)`:

1. takes a slot of the provider's concurrency cap, waiting up to `provider_timeout_seconds`
   (`provider_concurrency` slots shared by every worker process through Redis, so 100 uploads
   never open 100 provider calls; a thread semaphore in the embedded mode);
2. asks the breaker: while it is open the call raises `CircuitOpen` at once, without reaching
   the provider; half-open lets one probe through at a time;
3. runs `fn`: a `TransientError` counts as a failure of the provider, any answer (a result or a
   `PermanentError`) as a success;
4. repeats 1-3 with tenacity for transient errors only, `attempts` times with exponential
   backoff (a provider's Retry-After is honoured up to `_MAX_WAIT`). `CircuitOpen` is never
   retried here: the caller waits without burning an attempt (mina.pipeline.transcribe).

Breaker and slots live in Redis when Redis is configured (state shared by every process), in
this process otherwise (mina.breakers).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from mina import metrics
from mina.breakers import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    STATES,
    BreakerPolicy,
    BreakerStore,
    MemoryStore,
    RedisStore,
    redis_client,
)
from mina.errors import MinaError, TransientError
from mina.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Provider names with a breaker and a cap (labels in /metrics).
PROVIDERS = ("openai", "openai_chat", "assemblyai")
_MAX_WAIT = 10.0
_SLOT_POLL = 0.02

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "STATES", "CircuitOpen", "Guard", "RateLimited", "guard"]


class CircuitOpen(TransientError):
    """The provider's circuit is open: wait `retry_after` seconds; this is not an attempt."""

    code = "circuit_open"

    def __init__(self, provider: str, retry_after: float) -> None:
        super().__init__(
            f"{provider}: circuit open after repeated failures; retry in {retry_after:.0f}s"
        )
        self.provider = provider
        self.retry_after = max(0.0, retry_after)


class RateLimited(TransientError):
    """A 429 (or 503) with the provider's Retry-After, in seconds, when it gave one."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Guard:
    def __init__(self, name: str, settings: Settings, store: BreakerStore) -> None:
        self.name = name
        self.settings = settings
        self.store = store
        self.policy = BreakerPolicy(
            failures=settings.breaker_failures,
            reset_seconds=settings.breaker_reset_seconds,
            successes=settings.breaker_successes,
            probe_seconds=settings.provider_timeout_seconds + 5.0,
        )

    def call(self, fn: Callable[[], T], *, attempts: int | None = None) -> T:
        """Run `fn` under the cap and the breaker, retrying transient errors."""
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(max(1, attempts or self.settings.provider_attempts)),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._once, fn)

    def _once(self, fn: Callable[[], T]) -> T:
        with self.slot():
            allowed, retry_after = self.store.allow(self.name, self.policy, time.time())
            if not allowed:
                metrics.CIRCUIT_REJECTIONS.labels(self.name).inc()
                raise CircuitOpen(self.name, retry_after)
            started = time.monotonic()
            try:
                result = fn()
            except TransientError as exc:
                self._record(ok=False, error=exc)
                raise
            except MinaError:
                self._record(ok=True)  # an answer, if a refusal (a 400): the provider is up
                raise
            # Anything else (a time limit interrupting us) says nothing about the provider: not
            # counted; a probe it interrupted frees itself after `probe_seconds`.
            finally:
                metrics.PROVIDER_CALL_SECONDS.labels(self.name).observe(time.monotonic() - started)
        self._record(ok=True)
        return result

    def _record(self, *, ok: bool, error: BaseException | None = None) -> None:
        before, after = self.store.record(self.name, self.policy, ok, time.time())
        if not ok:
            metrics.PROVIDER_FAILURES.labels(self.name, type(error).__name__).inc()
        if before != after:
            level = logging.WARNING if after == OPEN else logging.INFO
            log.log(level, "provider %s: circuit %s -> %s (%s)", self.name, before, after, error)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of `provider_concurrency` slots, shared by every process using this store."""
        token = uuid.uuid4().hex
        ttl = self.settings.provider_timeout_seconds + 30.0
        limit = max(1, self.settings.provider_concurrency)
        deadline = time.monotonic() + self.settings.provider_timeout_seconds
        while not self.store.acquire_slot(self.name, token, limit, ttl, time.time()):
            if time.monotonic() > deadline:
                raise TransientError(f"{self.name}: all {limit} provider slots stayed busy")
            time.sleep(_SLOT_POLL)
        try:
            yield
        finally:
            self.store.release_slot(self.name, token)

    def state(self) -> str:
        return self.store.state(self.name, self.policy, time.time())[0]

    def check(self) -> None:
        """Raise CircuitOpen while the circuit is open (a peek: it changes nothing)."""
        state, wait = self.store.state(self.name, self.policy, time.time())
        if state == OPEN:
            raise CircuitOpen(self.name, wait)

    def _wait(self, retry_state: RetryCallState) -> float:
        exp = min(
            self.settings.retry_max_backoff_ms / 1000.0,
            self.settings.retry_min_backoff_ms / 1000.0 * 2 ** (retry_state.attempt_number - 1),
        )
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_after:
            return min(_MAX_WAIT, max(exp, exc.retry_after))
        return exp

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        metrics.PROVIDER_RETRIES.labels(self.name).inc()
        outcome = retry_state.outcome
        log.info(
            "provider %s: attempt %d failed (%s), retrying",
            self.name,
            retry_state.attempt_number,
            outcome.exception() if outcome is not None else "?",
        )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, CircuitOpen)


@functools.lru_cache(maxsize=1)
def _memory_store() -> MemoryStore:
    return MemoryStore()


@functools.lru_cache(maxsize=8)
def _redis_store(url: str) -> RedisStore:
    return RedisStore(redis_client(url))


def store_for(settings: Settings) -> BreakerStore:
    """Redis when configured (shared by every process), else this process's memory."""
    url = settings.resolved_redis_url
    return _redis_store(url) if url else _memory_store()


def guard(name: str, settings: Settings) -> Guard:
    """The guard of provider `name` with these settings (cheap: state lives in the store)."""
    return Guard(name, settings, store_for(settings))


def check(name: str, settings: Settings) -> None:
    """Before costly preparation (audio normalization): is provider `name` worth calling now?
    Providers without a breaker (local, simulated) always are."""
    if name in PROVIDERS:
        guard(name, settings).check()


def breaker_states(settings: Settings) -> dict[str, str]:
    """Every provider's circuit state (closed, open, half_open): /metrics and operator stats."""
    return {name: guard(name, settings).state() for name in PROVIDERS}

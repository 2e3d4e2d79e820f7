"""Where circuit breakers and provider slots keep their state: Redis, or this process.

The breaker (per provider): `closed` counts consecutive failures and opens at
`policy.failures`; `open` refuses calls until `policy.reset_seconds` have passed, then turns
`half_open`; `half_open` lets one probe through at a time (a key with a TTL, so a probe whose
process died frees itself) and closes after `policy.successes` successes; one failure opens it
again. Slots (the concurrency cap) are members of a sorted set scored by their expiry, so a
slot held by a crashed process lapses after its TTL.

With Redis every change is one Lua script: atomic across all worker processes and machines.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mina.errors import TransientError

if TYPE_CHECKING:  # imported where used: the embedded mode has no Redis (~0.1 s of start-up)
    import redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, HALF_OPEN, OPEN)
_PREFIX = "mina:provider:"
#: How long a caller refused during a half-open probe waits before asking again.
PROBE_BUSY_SECONDS = 3.0

T = TypeVar("T")


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int
    reset_seconds: float
    successes: int
    probe_seconds: float


class BreakerStore(Protocol):
    def allow(self, name: str, policy: BreakerPolicy, now: float) -> tuple[bool, float]:
        """May a call go through now? If not, how many seconds until it is worth asking."""

    def record(self, name: str, policy: BreakerPolicy, ok: bool, now: float) -> tuple[str, str]:
        """Count a call's outcome; returns the state before and after."""

    def state(self, name: str, policy: BreakerPolicy, now: float) -> tuple[str, float]:
        """The state now (open turns half_open once due) and seconds until an open one is."""

    def acquire_slot(self, name: str, token: str, limit: int, ttl: float, now: float) -> bool: ...

    def release_slot(self, name: str, token: str) -> None: ...


def _due(state: str, opened_at: float, policy: BreakerPolicy, now: float) -> tuple[str, float]:
    if state != OPEN:
        return state, 0.0
    wait = opened_at + policy.reset_seconds - now
    return (OPEN, wait) if wait > 0 else (HALF_OPEN, 0.0)  # due: the next call is a probe


# --- Redis -----------------------------------------------------------------------------------

_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {1, '0'} end
if state == 'open' then
  local wait = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') + tonumber(ARGV[2])
    - tonumber(ARGV[1])
  if wait > 0 then return {0, tostring(wait)} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'successes', 0)
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return {1, '0'} end
return {0, ARGV[4]}
"""

_RECORD = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[1] == '1' then
  if state == 'half_open' then
    redis.call('DEL', KEYS[2])
    if redis.call('HINCRBY', KEYS[1], 'successes', 1) >= tonumber(ARGV[4]) then
      redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'successes', 0)
      return {state, 'closed'}
    end
  elseif state == 'closed' then
    redis.call('HSET', KEYS[1], 'failures', 0)
  end
  return {state, state}
end
if state == 'half_open' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2], 'successes', 0)
  return {state, 'open'}
end
if state == 'closed' and redis.call('HINCRBY', KEYS[1], 'failures', 1) >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2])
  return {state, 'open'}
end
return {state, state}
"""

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0
"""


@functools.lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _redis_call(fn: Callable[[], T]) -> T:
    import redis

    try:
        return fn()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise TransientError(f"redis unreachable for provider state: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._allow = client.register_script(_ALLOW)
        self._record = client.register_script(_RECORD)
        self._acquire = client.register_script(_ACQUIRE)

    @staticmethod
    def _keys(name: str) -> list[str]:
        return [f"{_PREFIX}{name}:breaker", f"{_PREFIX}{name}:probe"]

    def allow(self, name: str, policy: BreakerPolicy, now: float) -> tuple[bool, float]:
        args = [
            repr(now),
            repr(policy.reset_seconds),
            str(int(policy.probe_seconds * 1000)),
            repr(PROBE_BUSY_SECONDS),
        ]
        ok, wait = _redis_call(lambda: self._allow(keys=self._keys(name), args=args))
        return bool(int(ok)), float(_text(wait))

    def record(self, name: str, policy: BreakerPolicy, ok: bool, now: float) -> tuple[str, str]:
        args = ["1" if ok else "0", repr(now), str(policy.failures), str(policy.successes)]
        before, after = _redis_call(lambda: self._record(keys=self._keys(name), args=args))
        return _text(before), _text(after)

    def state(self, name: str, policy: BreakerPolicy, now: float) -> tuple[str, float]:
        raw = _redis_call(lambda: self.client.hmget(self._keys(name)[0], "state", "opened_at"))
        state = _text(raw[0]) if raw[0] else CLOSED
        return _due(state, float(_text(raw[1] or b"0")), policy, now)

    def acquire_slot(self, name: str, token: str, limit: int, ttl: float, now: float) -> bool:
        args = [repr(now), repr(now + ttl), str(limit), token]
        return bool(_redis_call(lambda: self._acquire(keys=[f"{_PREFIX}{name}:slots"], args=args)))

    def release_slot(self, name: str, token: str) -> None:
        _redis_call(lambda: self.client.zrem(f"{_PREFIX}{name}:slots", token))


# --- this process ----------------------------------------------------------------------------


@dataclass
class _Breaker:
    state: str = CLOSED
    failures: int = 0
    successes: int = 0
    opened_at: float = 0.0
    probe_until: float = 0.0
    slots: dict[str, float] = field(default_factory=dict)


class MemoryStore:
    """The same rules for one process (embedded mode: no Redis to share state through)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}

    @contextmanager
    def _get(self, name: str) -> Iterator[_Breaker]:
        with self._lock:
            yield self._breakers.setdefault(name, _Breaker())

    def allow(self, name: str, policy: BreakerPolicy, now: float) -> tuple[bool, float]:
        with self._get(name) as b:
            if b.state == CLOSED:
                return True, 0.0
            if b.state == OPEN:
                wait = b.opened_at + policy.reset_seconds - now
                if wait > 0:
                    return False, wait
                b.state, b.successes = HALF_OPEN, 0
            if b.probe_until <= now:
                b.probe_until = now + policy.probe_seconds
                return True, 0.0
            return False, PROBE_BUSY_SECONDS

    def record(self, name: str, policy: BreakerPolicy, ok: bool, now: float) -> tuple[str, str]:
        with self._get(name) as b:
            before = b.state
            if ok and b.state == HALF_OPEN:
                b.probe_until = 0.0
                b.successes += 1
                if b.successes >= policy.successes:
                    b.state, b.failures, b.successes = CLOSED, 0, 0
            elif ok and b.state == CLOSED:
                b.failures = 0
            elif not ok and b.state == HALF_OPEN:
                b.state, b.opened_at, b.successes, b.probe_until = OPEN, now, 0, 0.0
            elif not ok and b.state == CLOSED:
                b.failures += 1
                if b.failures >= policy.failures:
                    b.state, b.opened_at = OPEN, now
            return before, b.state

    def state(self, name: str, policy: BreakerPolicy, now: float) -> tuple[str, float]:
        with self._get(name) as b:
            return _due(b.state, b.opened_at, policy, now)

    def acquire_slot(self, name: str, token: str, limit: int, ttl: float, now: float) -> bool:
        with self._get(name) as b:
            for other, expires in list(b.slots.items()):
                if expires <= now:
                    del b.slots[other]
            if len(b.slots) >= limit:
                return False
            b.slots[token] = now + ttl
            return True

    def release_slot(self, name: str, token: str) -> None:
        with self._get(name) as b:
            b.slots.pop(token, None)

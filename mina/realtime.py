"""Socket.IO emitters for the relay (`mina.events.relay`), one per process.

The web process emits through its own Flask-SocketIO server (`SocketIOEmitter(socketio.server)`,
set in `create_app`); it reaches its own clients directly and the other web processes through
the message queue. Workers and the scheduler have no server: `build_emitter` gives them a
write-only Socket.IO Redis manager on `MINA_SOCKETIO_QUEUE_URL` (default: the Redis broker URL),
publishing on the channel every web process listens to. Without Redis (embedded mode) there is
one process, whose app emits for everyone, and `build_emitter` returns None.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlparse

import redis
import socketio

from mina.errors import ConfigurationError, TransientError
from mina.events import Emitter, relay
from mina.settings import Settings

log = logging.getLogger(__name__)

NAMESPACE = "/"


def channel(url: str) -> str:
    """The pub/sub channel: per Redis database, since Redis pub/sub ignores the database number
    and two deployments (or test runs) sharing one Redis must not hear each other."""
    db = urlparse(url).path.strip("/") or "0"
    return f"mina-socketio-db{db}"


class QueueManager(socketio.RedisManager):  # type: ignore[misc]
    """A Socket.IO Redis manager whose failed publish of an *emit* raises.

    The stock manager logs and drops a message it could not publish; the relay must know, so
    the event stays unstamped for the scheduler to send again (redis-py's pool reconnects on the
    next publish). Other messages (room changes, disconnects across hosts) keep the stock
    behaviour: the server itself sends those.
    """

    pubsub: Any
    _writer: redis.Redis | None = None

    def listening(self, timeout: float) -> bool:
        """Wait until the listener thread has subscribed (it starts with the first client);
        a join waits for it, so nothing published in between is missed."""
        deadline = time.monotonic() + timeout
        while not (self.pubsub is not None and self.pubsub.subscribed):
            if self.write_only or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _publish(self, data: dict[str, Any]) -> Any:
        if data.get("method") != "emit":
            return super()._publish(data)
        # Its own client: the stock reconnect replaces `self.pubsub`, the listener's.
        if self._writer is None:
            self._writer = redis.Redis.from_url(self.redis_url, **self.redis_options)
        return self._writer.publish(self.channel, self.json.dumps(data))


class SocketIOEmitter:
    """Emits through a python-socketio `Server` or a (write-only) client manager."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def emit(self, event: str, data: dict[str, Any], room: str) -> None:
        try:
            self._target.emit(event, data, to=room, namespace=NAMESPACE)
        except redis.RedisError as exc:
            raise TransientError(f"socket.io message queue unreachable: {exc}") from exc


def build_manager(settings: Settings, *, write_only: bool = False) -> QueueManager | None:
    """The Socket.IO message queue on Redis, or None when there is none (embedded mode)."""
    url = settings.resolved_socketio_queue_url
    if not url:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"MINA_SOCKETIO_QUEUE_URL must be a redis:// URL, not {url!r}")
    # Bound connects always; bound reads only for writers: the web process's listener blocks
    # on its subscription while nothing happens, and a read timeout would drop it every time.
    options: dict[str, Any] = {"socket_connect_timeout": 5.0}
    if write_only:
        options["socket_timeout"] = 5.0
    return QueueManager(url, channel=channel(url), write_only=write_only, redis_options=options)


def build_emitter(settings: Settings) -> Emitter | None:
    """A write-only emitter for a process without a Socket.IO server (workers, scheduler)."""
    manager = build_manager(settings, write_only=True)
    return None if manager is None else SocketIOEmitter(manager)


def install(settings: Settings) -> bool:
    """Give this process's relay an emitter unless it has one (the app's, in the web process)."""
    if relay.active:
        return True
    emitter = build_emitter(settings)
    if emitter is None:
        return False
    relay.set_emitter(emitter, dashboard_interval=settings.realtime_dashboard_interval_seconds)
    log.info("relay: emitting through the socket.io message queue")
    return True

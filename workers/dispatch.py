"""`mina.dispatch.Dispatcher` on Dramatiq: groups, pipelines and completion callbacks.

A broker that cannot be reached surfaces as `TransientError`, which callers treat as "leave it
in the database for the scheduler".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import dramatiq
import redis
from dramatiq import group, pipeline
from dramatiq.errors import ConnectionError as BrokerConnectionError

from mina.dispatch import Depths
from mina.errors import TransientError
from mina.pipeline.task_state import CHAIN
from mina.settings import get_settings

log = logging.getLogger(__name__)


@contextmanager
def _broker_errors() -> Iterator[None]:
    try:
        yield
    except (BrokerConnectionError, redis.exceptions.ConnectionError, OSError) as exc:
        raise TransientError(f"broker unreachable: {exc}") from exc


def _with_callback(g: group, callback: dramatiq.Message) -> None:
    if get_settings().dispatch_callbacks:
        g.add_completion_callback(callback)
    else:  # chaos setting: the callback is lost on purpose, the scheduler must recover
        log.warning("group callback %s dropped (MINA_DISPATCH_CALLBACKS)", callback.actor_name)
    g.run()


class DramatiqDispatcher:
    def _actor(self, name: str) -> dramatiq.Actor:
        from workers import actors  # the actors module registers with the broker on import

        found: dramatiq.Actor = getattr(actors, name)
        return found

    def transcribe(self, chunk_ids: Sequence[str]) -> None:
        actor = self._actor("transcribe_chunk")
        with _broker_errors():
            for chunk_id in chunk_ids:
                actor.send(chunk_id)

    def transcribe_and_settle(self, conversation_id: str, chunk_ids: Sequence[str]) -> None:
        actor = self._actor("transcribe_chunk")
        with _broker_errors():
            if not chunk_ids:
                self._actor("settle").send(conversation_id)
                return
            g = group([actor.message(chunk_id) for chunk_id in chunk_ids])
            _with_callback(g, self._actor("settle").message(conversation_id))

    def transcribe_pieces(self, chunk_id: str, pieces: int) -> None:
        actor = self._actor("transcribe_piece")
        with _broker_errors():
            g = group([actor.message(chunk_id, n) for n in range(pieces)])
            _with_callback(g, self._actor("assemble_chunk").message(chunk_id))

    def settle(self, conversation_id: str) -> None:
        with _broker_errors():
            self._actor("settle").send(conversation_id)

    def seam_and_settle(self, conversation_id: str) -> None:
        with _broker_errors():
            self._actor("seam_and_settle").send(conversation_id)

    def complete_provider_job(self, delivery_id: int) -> None:
        with _broker_errors():
            self._actor("complete_provider_job").send(delivery_id)

    def deliver_webhooks(self, delivery_ids: Sequence[int]) -> None:
        from workers.outbound import sender

        sender.deliver(list(delivery_ids))

    def webhook_subscriptions_changed(self) -> None:
        from workers.outbound import subscriptions_changed

        subscriptions_changed()

    def queue_depths(self) -> Depths | None:
        from workers.queues import queue_depths

        return queue_depths()

    def ping(self) -> str:
        from workers.broker import broker

        client = getattr(broker, "client", None)
        if client is None:
            return "ok"  # the in-process StubBroker, or RabbitMQ checked on use
        try:
            client.ping()
            return "ok"
        except OSError as exc:
            return f"error: {exc}"
        except Exception as exc:  # noqa: BLE001 - redis raises its own ConnectionError tree
            return f"error: {exc}"

    def post_process(self, conversation_id: str, tasks: Sequence[str]) -> None:
        settings = get_settings()

        def message(name: str) -> dramatiq.Message:
            actor = self._actor("post_task_cpu" if name in CHAIN else "post_task_network")
            limit_ms = int(settings.time_limit(name) * 1000)
            return actor.message_with_options(
                args=(conversation_id, name), time_limit=limit_ms, pipe_ignore=True
            )

        chain = [message(n) for n in CHAIN if n in tasks]
        children: list[dramatiq.Message | pipeline] = []
        if len(chain) > 1:
            children.append(pipeline(chain))
        else:
            children.extend(chain)
        children.extend(message(n) for n in tasks if n not in CHAIN)
        with _broker_errors():
            _with_callback(group(children), self._actor("reveal").message(conversation_id))

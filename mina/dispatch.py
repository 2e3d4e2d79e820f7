"""The port through which `mina` asks for work to be queued.

`mina` never imports the queue: `workers.dispatch.DramatiqDispatcher` implements this protocol
and callers (views, actors, scheduler jobs) pass it in. Messages carry ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: Per queue: `ready`, `in_progress`, `delayed`, `dead` (None where the broker cannot tell).
Depths = dict[str, dict[str, int | None]]


class Dispatcher(Protocol):
    def transcribe(self, chunk_ids: Sequence[str]) -> None:
        """Queue `transcribe_chunk` for each chunk, independently."""

    def transcribe_and_settle(self, conversation_id: str, chunk_ids: Sequence[str]) -> None:
        """Queue a group of `transcribe_chunk` whose completion callback runs the barrier."""

    def transcribe_pieces(self, chunk_id: str, pieces: int) -> None:
        """Queue a group of `transcribe_piece` whose completion callback assembles the chunk."""

    def settle(self, conversation_id: str) -> None:
        """Queue the barrier for one conversation."""

    def seam_and_settle(self, conversation_id: str) -> None:
        """Queue, where the transcription model is, the open seams and then the barrier."""

    def post_process(self, conversation_id: str, tasks: Sequence[str]) -> None:
        """Queue the post-processing group (only `tasks`) whose completion callback reveals."""

    def complete_provider_job(self, delivery_id: int) -> None:
        """Queue the handling of a stored provider webhook (mina.pipeline.provider_jobs)."""

    def deliver_webhooks(self, delivery_ids: Sequence[int]) -> None:
        """Queue outgoing webhook deliveries (mina.outbound)."""

    def webhook_subscriptions_changed(self) -> None:
        """A subscription was created or resumed: this process's next commit fans out."""

    def queue_depths(self) -> Depths | None:
        """How many messages wait in each queue; None if the broker cannot be asked."""

    def ping(self) -> str:
        """ "ok", or "error: …" when the broker cannot be reached (the health check)."""


class NullDispatcher:
    """Queues nothing: the scheduler finds the work in the database later."""

    def transcribe(self, chunk_ids: Sequence[str]) -> None:
        return None

    def transcribe_and_settle(self, conversation_id: str, chunk_ids: Sequence[str]) -> None:
        return None

    def transcribe_pieces(self, chunk_id: str, pieces: int) -> None:
        return None

    def settle(self, conversation_id: str) -> None:
        return None

    def seam_and_settle(self, conversation_id: str) -> None:
        return None

    def post_process(self, conversation_id: str, tasks: Sequence[str]) -> None:
        return None

    def complete_provider_job(self, delivery_id: int) -> None:
        return None

    def deliver_webhooks(self, delivery_ids: Sequence[int]) -> None:
        return None

    def webhook_subscriptions_changed(self) -> None:
        return None

    def queue_depths(self) -> Depths | None:
        return None

    def ping(self) -> str:
        return "ok"

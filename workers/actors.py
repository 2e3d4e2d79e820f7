"""Thin Dramatiq actors: parse ids, call one `mina` function, return.

Retries are explicit per actor. Chunk transcription retries transient errors through Dramatiq
(backoff from settings) and records the final failure itself, returning normally so group
callbacks fire. Post-processing tasks retry inside `mina` (tenacity) and never raise.
`TimeLimitExceeded` derives from BaseException: it is caught by name.
"""

from __future__ import annotations

import logging
import random
from typing import NoReturn

import dramatiq
from dramatiq.middleware import CurrentMessage, TimeLimitExceeded

from mina.errors import PermanentError, TransientError
from mina.pipeline import barrier, post, provider_jobs, seams, transcribe, work
from mina.resilience import CircuitOpen
from workers.broker import asr_queue, broker
from workers.services import services

log = logging.getLogger(__name__)

_settings = services().settings
_ASR_QUEUE = asr_queue(_settings)
_RETRIES = max(0, _settings.chunk_max_attempts)


def _last_try() -> bool:
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    return int(message.options.get("retries", 0)) >= _RETRIES


def _retry_transient(retries: int, exc: BaseException) -> bool:
    if isinstance(exc, dramatiq.Retry):
        return True  # waiting for an open circuit (below): not counted, never exhausted
    return isinstance(exc, TransientError) and retries < _RETRIES


def _wait_for_circuit(exc: CircuitOpen) -> NoReturn:
    """Come back when the provider's circuit may let calls through again. Not a retry: the
    chunk's attempt was refunded, and the retry Dramatiq is about to count is taken back."""
    message = CurrentMessage.get_current_message()
    if message is not None:
        message.options["retries"] = int(message.options.get("retries", 0)) - 1
    delay = max(1.0, exc.retry_after) * random.uniform(1.0, 1.25)
    raise dramatiq.Retry(str(exc), delay=int(delay * 1000))


@dramatiq.actor(
    broker=broker,
    queue_name=_ASR_QUEUE,
    max_retries=_RETRIES,
    retry_when=_retry_transient,
    throws=(PermanentError,),
    time_limit=int(_settings.transcribe_time_limit_seconds * 1000),
)
def transcribe_chunk(chunk_id: str) -> None:
    svc = services()
    try:
        transcribe.run_chunk(chunk_id, svc, last_try=_last_try())
    except CircuitOpen as exc:
        _wait_for_circuit(exc)
    except TimeLimitExceeded:
        transcribe.handle_interrupt(chunk_id, svc, "time limit exceeded", last_try=_last_try())


@dramatiq.actor(
    broker=broker,
    queue_name=_ASR_QUEUE,
    max_retries=_RETRIES,
    retry_when=_retry_transient,
    time_limit=int(_settings.transcribe_time_limit_seconds * 1000),
)
def transcribe_piece(chunk_id: str, piece: int) -> None:
    try:
        transcribe.run_piece(chunk_id, piece, services(), last_try=_last_try())
    except CircuitOpen as exc:
        _wait_for_circuit(exc)


@dramatiq.actor(
    broker=broker,
    queue_name="network",
    max_retries=_RETRIES,
    retry_when=_retry_transient,
    min_backoff=1000,
)
def complete_provider_job(delivery_id: int) -> None:
    """A provider's webhook was stored: fetch the transcript and finish the chunk."""
    svc = services()
    try:
        provider_jobs.complete_delivery(delivery_id, svc.settings, svc.dispatcher)
    except CircuitOpen as exc:
        _wait_for_circuit(exc)


@dramatiq.actor(broker=broker, queue_name=_ASR_QUEUE, max_retries=3, min_backoff=1000)
def assemble_chunk(chunk_id: str) -> None:
    transcribe.assemble(chunk_id, services())


@dramatiq.actor(broker=broker, queue_name="network", max_retries=3, min_backoff=1000)
def settle(conversation_id: str) -> None:
    barrier.settle(conversation_id, services().dispatcher)


@dramatiq.actor(broker=broker, queue_name=_ASR_QUEUE, max_retries=3, min_backoff=1000)
def seam_and_settle(conversation_id: str) -> None:
    """The barrier found boundaries without their seam: make them (the model is here), then
    run the barrier again, which passes now whether or not a seam could be made."""
    svc = services()
    seams.repair_before_barrier(conversation_id, svc)
    barrier.settle(conversation_id, svc.dispatcher, seams_made=True)


def _post_task(conversation_id: str, name: str) -> None:
    work.execute(conversation_id, name, services(), interrupts=(TimeLimitExceeded,))


post_task_cpu = dramatiq.actor(
    actor_name="post_task_cpu", broker=broker, queue_name="cpu", max_retries=0
)(_post_task)
post_task_network = dramatiq.actor(
    actor_name="post_task_network", broker=broker, queue_name="network", max_retries=0
)(_post_task)


@dramatiq.actor(broker=broker, queue_name="network", max_retries=3, min_backoff=1000)
def reveal(conversation_id: str) -> None:
    post.reveal(conversation_id, services().settings)


from workers import outbound as _outbound  # noqa: E402,F401  webhooks (docs/webhooks.md)

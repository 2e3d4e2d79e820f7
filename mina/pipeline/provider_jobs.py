"""Asynchronous provider jobs (AssemblyAI): submit, complete on a webhook, poll when none came.

The chunk waits in `processing` while the provider works: `provider`, `provider_job_id` and
`provider_submitted_at` are set (mina.pipeline.chunk_state.submitted), and the lease is long
enough (job timeout + lease) that the scheduler's stalled-chunk job leaves it alone. A webhook
stores a delivery and queues `complete_provider_job`, which fetches the transcript and finishes
the chunk with the same state functions as the synchronous path (mina.pipeline.chunk_state),
then runs the barrier. The provider's side (its interface, its client) is mina.providers.

`poll_overdue` is the scheduler's fallback: a job without news is polled at
`provider_job_timeout_seconds / provider_job_max_polls` intervals; after the last poll it fails
with an error that says so. It also finishes deliveries whose message was lost.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from mina import metrics, webhooks
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import PermanentError, TransientError, ValidationError
from mina.models import Chunk, WebhookDelivery
from mina.pipeline import barrier
from mina.pipeline import chunk_state as state
from mina.pipeline.chunk_state import PROCESSING
from mina.providers import job_provider
from mina.providers.base import JobProvider, JobStatus, Webhook
from mina.resilience import CircuitOpen
from mina.settings import Settings
from mina.storage import Storage
from mina.webhooks import DeliveryStatus

log = logging.getLogger(__name__)

# What handling a job's news came to (not a state of the chunk: an answer to the caller).
FINISHED_OK, FINISHED_FAILED, NOT_DONE, NO_CHUNK = "transcribed", "failed", "pending", "unknown"


def _audio_url(provider: JobProvider, storage: Storage, key: str, settings: Settings) -> str:
    try:
        return storage.presign_get(key, expires=int(settings.provider_job_timeout_seconds) + 3600)
    except ValidationError:  # local storage: no URL the provider could reach, so upload
        with storage.open(key) as stream:
            return provider.upload(stream)


def submit(claim: state.Claim, s: Settings, storage: Storage, provider: JobProvider) -> str:
    """Start the provider's job for a claimed chunk and leave the chunk waiting for it."""
    url = _audio_url(provider, storage, claim.storage_key, s)
    hook = None
    if s.webhook_secret:
        hook = Webhook(
            url=f"{s.base_url}/webhooks/transcription/{provider.name}?chunk={claim.chunk_id}",
            token=webhooks.token(s.webhook_secret, provider.name, claim.chunk_id),
        )
    job_id = provider.submit(url, s.language, hook)
    lease = utcnow() + timedelta(seconds=s.provider_job_timeout_seconds + s.lease_seconds)
    if not state.submitted(claim, provider.name, job_id, lease):
        log.warning("chunk %s: claim lost while submitting; job %s ignored", claim.chunk_id, job_id)
        return "skipped"
    log.info(
        "conversation %s: chunk %d submitted to %s as job %s%s",
        claim.conversation_id,
        claim.index,
        provider.name,
        job_id,
        "" if hook else " (no webhook: polled)",
    )
    return "submitted"


def complete_job(
    provider_name: str, job_id: str, settings: Settings, dispatcher: Dispatcher
) -> str:
    """Fetch the job and finish its chunk: transcribed, failed, pending (not done) or unknown."""
    with session_scope() as session:
        chunk = session.scalars(
            select(Chunk).where(Chunk.provider == provider_name, Chunk.provider_job_id == job_id)
        ).first()
        if chunk is None or chunk.status != PROCESSING:
            return NO_CHUNK
        claim = state.claim_of(chunk)
        started = chunk.started_at
    try:
        job = job_provider(provider_name, settings).fetch(job_id)
    except PermanentError as exc:
        job = JobStatus("error", error=str(exc))
    if job.segments is not None:
        ended = state.complete(claim, job.segments, None)
        if ended:
            if started is not None:
                seconds = (utcnow() - started).total_seconds()
                metrics.CHUNK_SECONDS.labels(provider_name).observe(seconds)
            if ended.barrier_due:  # else the finish to come runs it (chunk_state.Ended)
                barrier.settle(claim.conversation_id, dispatcher)
        return FINISHED_OK
    if job.status == "error":
        _fail(claim, f"{provider_name} job {job_id}: {job.error}", state.PERMANENT, dispatcher)
        return FINISHED_FAILED
    return NOT_DONE


def _fail(claim: state.Claim, error: str, kind: str, dispatcher: Dispatcher) -> None:
    ended = state.fail(claim, error, kind)
    if ended:
        metrics.CHUNK_FAILURES.labels(kind).inc()
        if ended.barrier_due:  # else the finish to come runs it (chunk_state.Ended)
            barrier.settle(claim.conversation_id, dispatcher)


def complete_delivery(delivery_id: int, settings: Settings, dispatcher: Dispatcher) -> str:
    """The `complete_provider_job` actor: act on one stored webhook, once."""
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return "skipped"
        provider, body = delivery.provider, delivery.body
    job_id = str(json.loads(body)["transcript_id"])
    outcome = complete_job(provider, job_id, settings, dispatcher)  # TransientError: retried
    status = DeliveryStatus.IGNORED if outcome == NO_CHUNK else DeliveryStatus.DONE
    with session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(status=status, error=None if outcome != NO_CHUNK else "no chunk waits for it")
        )
    log.info("webhook %s for %s job %s: chunk %s", delivery_id, provider, job_id, outcome)
    return outcome


def poll_chunk(chunk_id: str, settings: Settings, dispatcher: Dispatcher) -> str:
    """Poll one chunk's job once: finish the chunk if the provider has an answer (transcribed,
    failed), else `pending`; `unknown` if the chunk waits for no job. Raises TransientError when
    the provider cannot be reached. Counts nothing: for a caller with its own poll policy
    (mina.repair's `ProviderPoll`)."""
    with session_scope() as session:
        chunk = session.get(Chunk, chunk_id)
        if chunk is None or chunk.status != PROCESSING:
            return NO_CHUNK
        provider, job_id = chunk.provider, chunk.provider_job_id
    if not provider or not job_id:
        return NO_CHUNK
    return complete_job(provider, job_id, settings, dispatcher)


def poll_overdue(settings: Settings, dispatcher: Dispatcher, now: datetime | None = None) -> int:
    """Scheduler hook: finish lost deliveries, poll jobs with no news, fail them at the cap."""
    now = now or utcnow()
    changed = redeliver_pending(settings, dispatcher, now)
    polls = max(1, settings.provider_job_max_polls)
    interval = timedelta(seconds=settings.provider_job_timeout_seconds / polls)
    due = or_(
        *(
            and_(Chunk.provider_polls == k, Chunk.provider_submitted_at <= now - interval * (k + 1))
            for k in range(polls)
        )
    )
    with session_scope() as session:
        rows = session.execute(
            select(Chunk.provider, Chunk.provider_job_id)
            .where(Chunk.status == PROCESSING, Chunk.provider_job_id.is_not(None), due)
            .order_by(Chunk.provider_submitted_at)
            .limit(settings.scheduler_batch_size)
        ).all()
    for provider, job_id in rows:
        assert provider is not None and job_id is not None
        try:
            outcome, error = complete_job(provider, job_id, settings, dispatcher), ""
        except CircuitOpen:
            continue  # the provider is known to be down: not a poll
        except TransientError as exc:
            outcome, error = NOT_DONE, f" (last poll: {exc})"
        if outcome == NOT_DONE:
            changed += _count_poll(provider, job_id, settings, dispatcher, error)
        elif outcome != NO_CHUNK:
            changed += 1
    return changed


def _count_poll(
    provider: str, job_id: str, settings: Settings, dispatcher: Dispatcher, error: str
) -> int:
    with session_scope() as session:
        chunk = session.scalars(
            select(Chunk)
            .where(
                Chunk.provider == provider,
                Chunk.provider_job_id == job_id,
                Chunk.status == PROCESSING,
            )
            .with_for_update()
        ).first()
        if chunk is None:
            return 0
        polls = state.count_poll(chunk)
        claim = state.claim_of(chunk)
    if polls < settings.provider_job_max_polls:
        log.info("chunk %s: %s job %s not done at poll %d", claim.chunk_id, provider, job_id, polls)
        return 1
    _fail(
        claim,
        f"{provider} job {job_id}: no result after {polls} polls over "
        f"{settings.provider_job_timeout_seconds:.0f}s and no webhook{error}",
        state.TRANSIENT,
        dispatcher,
    )
    return 1


def redeliver_pending(settings: Settings, dispatcher: Dispatcher, now: datetime) -> int:
    """Deliveries still pending after `dispatch_delay_seconds` (their message was lost, or the
    broker was down when the webhook came): act on them here."""
    cutoff = now - timedelta(seconds=settings.dispatch_delay_seconds)
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.received_at <= cutoff,
                )
                .order_by(WebhookDelivery.id)
                .limit(settings.scheduler_batch_size)
            )
        )
    done = 0
    for delivery_id in ids:
        try:
            done += int(complete_delivery(delivery_id, settings, dispatcher) != "skipped")
        except TransientError as exc:
            log.warning("webhook %s: still cannot complete its job: %s", delivery_id, exc)
    return done

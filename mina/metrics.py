"""Prometheus metrics: defined here once, observed where the work happens, served by /metrics.

Counters and histograms live in the process that observes them. With `PROMETHEUS_MULTIPROC_DIR`
set (the same empty directory for the web and worker processes of one machine, wiped at start)
prometheus_client's multiprocess mode writes them to shared files and /metrics sums every
process; without it, each process only has its own (the web process: request latencies). State
shared by all processes (circuit breakers, queue depth, chunks in flight) is read at scrape time
from Redis and the database, so it is right in either mode and across machines.
See docs/providers.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mina.settings import Settings

log = logging.getLogger(__name__)

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

# --- chunks and providers (workers) ----------------------------------------------------------
CHUNK_SECONDS = Histogram(
    "mina_chunk_transcription_seconds",
    "Claim to transcript of one chunk, by transcription provider",
    ["provider"],
    buckets=_SLOW,
)
CHUNK_FAILURES = Counter(
    "mina_chunk_failures_total", "Chunks that ended failed, by error kind", ["kind"]
)
CHUNK_RETRIES = Counter(
    "mina_chunk_retries_total", "Chunk attempts given back to the queue after a transient error"
)
CIRCUIT_WAITS = Counter(
    "mina_chunk_circuit_waits_total", "Chunks put back to wait for an open circuit", ["provider"]
)
PROVIDER_CALL_SECONDS = Histogram(
    "mina_provider_call_seconds", "One call to a provider", ["provider"], buckets=_SLOW
)
PROVIDER_RETRIES = Counter(
    "mina_provider_retries_total", "Provider calls retried after a transient error", ["provider"]
)
PROVIDER_FAILURES = Counter(
    "mina_provider_failures_total", "Failed provider calls, by error type", ["provider", "error"]
)
CIRCUIT_REJECTIONS = Counter(
    "mina_circuit_rejections_total", "Calls refused by an open circuit", ["provider"]
)

# --- post-processing (workers) ---------------------------------------------------------------
POST_TASK_SECONDS = Histogram(
    "mina_post_task_seconds",
    "Duration of a post-processing task",
    ["task", "status"],
    buckets=_SLOW,
)
REVEAL_SECONDS = Histogram(
    "mina_finish_to_reveal_seconds", "From finish to the reveal of the results", buckets=_SLOW
)

# --- HTTP (web) ------------------------------------------------------------------------------
REQUEST_SECONDS = Histogram(
    "mina_request_seconds",
    "Latency of uploads, confirms and webhooks, by endpoint and status",
    ["endpoint", "status"],
    buckets=_FAST,
)
WEBHOOKS = Counter(
    "mina_webhooks_total", "Webhook deliveries, by provider and outcome", ["provider", "outcome"]
)

# --- scheduler (DESIGN §8; docs/runbooks/scheduler.md) ---------------------------------------
SCHEDULER_JOB_RUNS = Counter(
    "mina_scheduler_job_runs_total", "Runs of a scheduler job, failed runs included", ["job"]
)
SCHEDULER_JOB_ERRORS = Counter(
    "mina_scheduler_job_errors_total", "Runs of a scheduler job that raised", ["job"]
)
SCHEDULER_REPAIRS = Counter(
    "mina_scheduler_repairs_total",
    "Things a scheduler job changed (conversations finished, chunks requeued, blobs deleted…)",
    ["job"],
)
SCHEDULER_JOB_SECONDS = Histogram(
    "mina_scheduler_job_duration_seconds",
    "One run of a scheduler job",
    ["job"],
    buckets=(*_FAST, 10, 30, 60, 300),
)
SCHEDULER_JOB_LAST_SUCCESS = Gauge(
    "mina_scheduler_job_last_success_timestamp_seconds",
    "Unix time of the last run of a scheduler job that did not raise",
    ["job"],
    multiprocess_mode="max",
)
SCHEDULER_LEADER = Gauge(
    "mina_scheduler_leader",
    "1 while this process holds the scheduler's leader lock, else 0",
    multiprocess_mode="liveall",
)


class SharedState(Collector):
    """Gauges read at scrape time from the stores every process shares."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        from mina import resilience
        from mina.errors import MinaError

        circuit = GaugeMetricFamily(
            "mina_circuit_state",
            "Circuit breaker per provider: 1 for the current state",
            labels=["provider", "state"],
        )
        try:
            for provider, state in resilience.breaker_states(self.settings).items():
                for name in resilience.STATES:
                    circuit.add_metric([provider, name], 1.0 if state == name else 0.0)
        except MinaError as exc:
            log.warning("metrics: circuit state unavailable: %s", exc)
        yield circuit
        yield from _queues(self.settings)
        yield from _in_flight()


def _queues(settings: Settings) -> Iterator[Metric]:
    url = settings.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis

    from mina.breakers import redis_client

    depth = GaugeMetricFamily(
        "mina_queue_messages", "Messages waiting in a broker queue", labels=["queue"]
    )
    try:
        client = redis_client(url)
        for queue in ("cpu", "network"):
            depth.add_metric([queue], float(client.llen(f"dramatiq:{queue}")))
            depth.add_metric([f"{queue}.delayed"], float(client.llen(f"dramatiq:{queue}.DQ")))
    except redis.exceptions.RedisError as exc:
        log.warning("metrics: queue depth unavailable: %s", exc)
        return
    yield depth


def _in_flight() -> Iterator[Metric]:
    from sqlalchemy import func, select

    from mina.db import SQLAlchemyError, session_scope
    from mina.models import Chunk
    from mina.pipeline.chunk_state import PROCESSING, QUEUED

    gauge = GaugeMetricFamily(
        "mina_chunks_in_flight", "Chunks queued or processing (database)", labels=["status"]
    )
    try:
        with session_scope() as session:
            rows = dict(
                session.execute(
                    select(Chunk.status, func.count())
                    .where(Chunk.status.in_((QUEUED, PROCESSING)))
                    .group_by(Chunk.status)
                ).all()
            )
    except SQLAlchemyError as exc:
        log.warning("metrics: chunk counts unavailable: %s", exc)
        return
    for status in (QUEUED, PROCESSING):
        gauge.add_metric([status], float(rows.get(status, 0)))
    yield gauge


class _ThisProcess(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(settings: Settings) -> tuple[bytes, str]:
    """The /metrics page: this process (or every process of the machine) plus shared state."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        multiprocess.MultiProcessCollector(registry, path=path)
    if not path or values.ValueClass is values.MutexValue:
        # This process's own values are not in the shared files (it started before the
        # directory was set): add them as they are.
        registry.register(_ThisProcess())
    registry.register(SharedState(settings))
    return generate_latest(registry), CONTENT_TYPE_LATEST

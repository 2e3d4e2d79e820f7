"""The scheduler process (DESIGN §8): leader locks, `python -m scheduler --once`, `mina scheduler
--once`, two instances at once with a SIGKILLed leader, and the background thread of `mina dev`.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update

from mina.db import session_scope, utcnow
from mina.errors import ConfigurationError
from mina.models import Conversation
from mina.settings import Settings, get_settings
from mina.storage import build_storage
from scheduler.lock import REDIS_KEY, FileLock, PostgresLock, RedisLock, build_lock
from scheduler.service import run_scheduler, start_background
from tests.conftest import REDIS_URL
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.conversations import (
    create,
    idle_meeting,
    lost_message,
    messages_for,
    status,
    types,
    upload,
)
from tests.fixtures.stack import ROOT, wait_for


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("speech"), minutes=0.5, chunk_seconds=10)


# --- leader locks ---------------------------------------------------------------------------


@pytest.mark.services_only  # PostgreSQL and Redis locks
def test_postgres_and_redis_locks_admit_one_holder_and_pass_on(migrated: str) -> None:
    a, b = PostgresLock(migrated), PostgresLock(migrated)
    try:
        assert a.acquire() and a.still_held()
        assert not b.acquire()
        assert f"pid {os.getpid()}" in (b.holder() or "")
        a.release()
        assert not a.still_held()
        assert b.acquire() and not a.acquire()
    finally:
        a.release()
        b.release()
    assert a.holder() is None

    redis.Redis.from_url(REDIS_URL).delete(REDIS_KEY)
    first, second = RedisLock(REDIS_URL, 1.0), RedisLock(REDIS_URL, 1.0)
    assert first.acquire() and not second.acquire()
    assert first.still_held()
    # `first` stops renewing (a dead or paused leader): its key lapses, `second` takes over.
    wait_for(second.acquire, timeout=10)
    assert not first.still_held()
    first.release()  # no longer its lock: changes nothing
    assert second.still_held()
    second.release()
    assert second.holder() is None


@pytest.mark.embedded
def test_file_lock_admits_one_holder_and_standalone_embedded_is_refused(tmp_path: Path) -> None:
    a, b = FileLock(tmp_path / "scheduler.lock"), FileLock(tmp_path / "scheduler.lock")
    assert a.acquire() and not b.acquire()
    assert f"pid {os.getpid()}" in (b.holder() or "")
    a.release()
    assert b.holder() is None
    assert b.acquire()
    b.release()
    with pytest.raises(ConfigurationError, match="mina dev"):
        run_scheduler(Settings(broker_url=None, database_url="sqlite://"), once=True)


# --- the process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(port: int, name: str, job: str | None = None) -> float | None:
    """A value from a scheduler's /metrics; None while it does not answer, 0 if absent."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return None
    wanted = f'{name}{{job="{job}"}} ' if job else f"{name} "
    return next(
        (float(line.split()[-1]) for line in body.splitlines() if line.startswith(wanted)), 0.0
    )


def start_scheduler(tmp_path: Path, name: str, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"scheduler-{name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MINA_SCHEDULER_METRICS_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


@pytest.mark.services_only  # embedded runs the scheduler inside `mina dev`
def test_scheduler_process_once_repairs_and_a_second_run_finds_nothing(
    client: Any, clean_redis: None, env: Any, speech: Meeting
) -> None:
    env(idle_finish_seconds=300, dispatch_delay_seconds=60)
    idle = idle_meeting(client, speech)
    queued = lost_message(client, speech)
    storage = build_storage(get_settings())
    orphan = "conversations/gone/chunks/000000-0000000000000000.ogg"
    storage.put(orphan, io.BytesIO(b"orphan"))
    path = storage.local_path(orphan)
    assert path is not None
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert messages_for(queued) == 1  # the upload's, which the broker "lost"

    first = subprocess.run(
        [sys.executable, "-m", "scheduler", "--once"], cwd=ROOT, capture_output=True, timeout=180
    )
    log = first.stderr.decode()
    assert first.returncode == 0, log
    for job in ("auto_finish", "dispatch", "blobs"):
        assert f"job {job}: 1 repaired" in log, log
    with session_scope() as s:
        conv = s.get(Conversation, idle)
        assert conv is not None and conv.status == "transcription_failed"
    assert types(idle).count("conversation_finished") == 1
    assert messages_for(queued) == 2
    assert not storage.exists(orphan)

    mina = Path(sys.executable).with_name("mina")
    second = subprocess.run(
        [str(mina), "-v", "scheduler", "--once"], cwd=ROOT, capture_output=True, timeout=180
    )
    log = second.stderr.decode()
    assert second.returncode == 0, log
    assert "one run: auto_finish=0, dispatch=0, barrier=0, post_processing=0" in log, log
    assert types(idle).count("conversation_finished") == 1
    assert messages_for(queued) == 2


@pytest.mark.services_only  # embedded runs the scheduler inside `mina dev`
def test_two_schedulers_act_once_and_the_standby_takes_over_when_the_leader_dies(
    client: Any, clean_redis: None, env: Any, speech: Meeting, tmp_path: Path
) -> None:
    env(
        idle_finish_seconds=300,
        dispatch_delay_seconds=60,
        scheduler_interval_seconds=0.5,
        scheduler_lock_ttl_seconds=1.5,
    )
    idle = idle_meeting(client, speech)
    queued = lost_message(client, speech)
    ports = [free_port(), free_port()]
    procs = [start_scheduler(tmp_path, name, port) for name, port in zip("ab", ports, strict=True)]
    try:

        def leaders() -> list[float] | None:
            values = [metric(port, "mina_scheduler_leader") for port in ports]
            return values if sorted(v or 0.0 for v in values) == [0.0, 1.0] else None  # type: ignore[return-value]

        lead = wait_for(leaders, timeout=90).index(1.0)
        standby = 1 - lead

        def runs(i: int, job: str) -> float:
            return metric(ports[i], "mina_scheduler_job_runs_total", job) or 0.0

        wait_for(lambda: runs(lead, "auto_finish") >= 4 and runs(lead, "dispatch") >= 4)
        assert types(idle).count("conversation_finished") == 1
        assert messages_for(queued) == 2  # the upload's and one dispatch
        assert runs(standby, "auto_finish") == 0 and runs(standby, "dispatch") == 0
        status_cmd = [sys.executable, "-m", "scheduler", "--status"]
        shown = subprocess.run(status_cmd, cwd=ROOT, capture_output=True, timeout=60)
        assert f"pid {procs[lead][0].pid}" in shown.stdout.decode()

        os.killpg(procs[lead][0].pid, signal.SIGKILL)
        procs[lead][0].wait()
        wait_for(lambda: metric(ports[standby], "mina_scheduler_leader") == 1.0, timeout=30)
        later = idle_meeting(client, speech)
        wait_for(lambda: "conversation_finished" in types(later), timeout=30)
        seen = runs(standby, "auto_finish")
        wait_for(lambda: runs(standby, "auto_finish") >= seen + 3)
        assert types(later).count("conversation_finished") == 1
        assert types(idle).count("conversation_finished") == 1
        assert messages_for(queued) == 2  # requeued within the delay by nobody

        procs[standby][0].send_signal(signal.SIGTERM)
        assert procs[standby][0].wait(timeout=60) == 0
        assert "leader: " in procs[standby][1].read_text()
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.embedded
def test_background_scheduler_of_mina_dev_resumes_at_start_and_stops(
    client: Any, env: Any, speech: Meeting
) -> None:
    env(idle_finish_seconds=0.5, scheduler_interval_seconds=3600, scheduler_lock_ttl_seconds=1)
    cid, auth = create(client)
    upload(client, cid, auth, 0, speech.chunks[0])
    with session_scope() as s:
        s.execute(
            update(Conversation)
            .where(Conversation.id == cid)
            .values(last_activity_at=utcnow() - timedelta(minutes=1))
        )
    settings = get_settings()
    halt = start_background(settings)
    try:  # the interval is an hour: only the run at start can finish it
        wait_for(lambda: status(client, cid, auth)["is_finished"], timeout=60)
    finally:
        halt()
    lock = build_lock(settings)
    assert lock.acquire()  # released by the stopped scheduler
    lock.release()

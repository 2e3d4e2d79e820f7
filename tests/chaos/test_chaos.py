"""The chaos run (issue 19): Mina's four promises under crashes, checked from the database and
the ledger.

Real processes: gunicorn as the Procfile starts it, two `mina worker`s, two `mina scheduler`s,
the session's PostgreSQL and a redis-server started here with AOF on. Participants upload
concurrently over HTTP at a compressed cadence and retry what fails; the simulated transcriber
fails transiently (15 %) and permanently (3 %). Meanwhile workers are SIGKILLed again and again
and restarted, Redis is killed and restarted, the web process is killed mid-upload and
restarted, and the scheduler leader is killed (the standby must take over). Lease, heartbeat
and breaker settings are the defaults; only the scheduler's interval and the queued-chunk
dispatch delay are shortened to fit CI.

Promises asserted: every chunk answered 2xx has its row and an identical blob; every chunk is
terminal and a failed one keeps its error; no conversation is stuck; the flag is never set
before the last chunk's terminal event; exactly one outcome event per conversation; no
duplicate segments. Kills, restarts, retries and finish → reveal (max, p95) are printed.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from mina import results
from mina.db import session_scope, utcnow
from mina.models import Chunk, Conversation, Event
from mina.settings import get_settings
from mina.storage import build_storage
from tests.chaos.harness import Stack, rabbitmq_vhost
from tests.fixtures.audio import meeting
from tests.fixtures.stack import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.services_only]

CONVERSATIONS = 8
CHUNKS = 4
CADENCE = 4.0  # seconds between a participant's chunks (30 s in life)
CHAOS_SECONDS = 60.0  # worker kills go on this long from the first upload
OUTCOMES = ("post_transcription_reveal", "post_transcription_failed")
TERMINAL_EVENTS = ("chunk_transcribed", "chunk_failed")

SETTINGS = {
    "MINA_TRANSCRIBER": "simulated",
    "MINA_LANGUAGE_PROVIDER": "simulated",
    "MINA_SIM_LATENCY_SECONDS": "1.5",
    "MINA_SIM_TRANSIENT_RATE": "0.15",
    "MINA_SIM_PERMANENT_RATE": "0.03",
    "MINA_WORKER_PROCESSES": "1",
    "MINA_WORKER_THREADS": "2",
    "MINA_SCHEDULER_INTERVAL_SECONDS": "5",
    "MINA_DISPATCH_DELAY_SECONDS": "10",
}


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def retried(self) -> None:
        with self.lock:
            self.retries += 1


@dataclass
class Participant:
    cid: str = ""
    token: str = ""
    accepted: dict[int, str] = field(default_factory=dict)  # index -> sha256 answered 2xx
    finished_at: datetime | None = None
    error: str | None = None


def call(
    tally: Tally, method: str, url: str, *, budget: float = 120.0, **kwargs: Any
) -> requests.Response:
    """A client that retries what a crash causes (no answer, 5xx) with backoff, as the
    participant page's upload queue does; 4xx answers are returned."""
    deadline = time.monotonic() + budget
    wait = 0.3
    while True:
        try:
            for value in kwargs.get("files", {}).values():
                value[1].seek(0)
            r = requests.request(method, url, timeout=15, **kwargs)
            if r.status_code < 500:
                return r
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{method} {url}: no answer within {budget}s")
        tally.retried()
        time.sleep(wait * random.uniform(0.5, 1.5))
        wait = min(wait * 2, 3.0)


def participant(stack: Stack, chunks: list[Path], tally: Tally, out: Participant) -> None:
    base = stack.base_url
    try:
        r = call(tally, "POST", f"{base}/api/conversations", json={"title": "chaos"})
        assert r.status_code == 201, r.text
        out.cid, out.token = r.json()["id"], r.json()["token"]
        auth = {"Authorization": f"Bearer {out.token}"}
        for index, path in enumerate(chunks):
            time.sleep(CADENCE * random.uniform(0.5, 1.5))
            body = path.read_bytes()
            with path.open("rb") as fh:
                r = call(
                    tally,
                    "POST",
                    f"{base}/api/conversations/{out.cid}/chunks",
                    data={"index": str(index)},
                    files={"file": (path.name, fh, "audio/ogg")},
                    headers=auth,
                )
            assert r.status_code in (200, 202), r.text
            out.accepted[index] = hashlib.sha256(body).hexdigest()
        r = call(
            tally,
            "POST",
            f"{base}/api/conversations/{out.cid}/finish",
            json={"expected_chunks": len(chunks)},
            headers=auth,
        )
        assert r.status_code == 202, r.text
        out.finished_at = utcnow()
    except AssertionError as exc:
        out.error = str(exc)


def guarded(fault: Any, tally: Tally) -> Any:
    """A fault thread whose failure (a process that would not start again) fails the test."""

    def run(*args: Any) -> None:
        try:
            fault(*args)
        except Exception as exc:
            tally.errors.append(f"{fault.__name__}: {type(exc).__name__}: {exc}")

    return run


def kill_workers(stack: Stack, tally: Tally, stop: threading.Event, started: float) -> None:
    """A random worker SIGKILLed every few seconds and restarted a moment later (its supervisor),
    for CHAOS_SECONDS or until `stop`."""
    workers = [n for n in stack.procs if n.startswith("worker")]
    while not stop.wait(random.uniform(1.5, 3.5)):
        if time.monotonic() - started > CHAOS_SECONDS:
            return
        name = random.choice(workers)
        stack.procs[name].kill()
        tally.kills[name] += 1
        time.sleep(random.uniform(0.5, 2.0))
        stack.procs[name].start()
        tally.restarts[name] += 1


def crashes(stack: Stack, tally: Tally, stop: threading.Event, started: float) -> None:
    """Once each, at its time after the first upload: the web process mid-upload, Redis, the
    scheduler leader."""
    for what, at in (("web", 5.0), ("redis", 14.0), ("scheduler", 24.0)):
        if stop.wait(max(0.0, started + at - time.monotonic())):
            return
        crash(stack, tally, what)


def crash(stack: Stack, tally: Tally, what: str) -> None:
    if what == "web":
        stack.procs["web"].kill()
        tally.kills["web"] += 1
        time.sleep(3.0)  # down long enough that uploads meet it (its restart takes seconds more)
        stack.start_web()
        tally.restarts["web"] += 1
    elif what == "redis":
        stack.procs["redis"].kill()
        tally.kills["redis"] += 1
        time.sleep(2.0)
        stack.procs["redis"].start()  # the AOF brings back what was acknowledged
        tally.restarts["redis"] += 1
    else:
        name = wait_for(stack.leader, timeout=60)
        stack.procs[name].kill()
        tally.kills["scheduler leader"] += 1
        took_over = wait_for(lambda: (now := stack.leader()) and now != name, timeout=90)
        assert took_over, "the standby scheduler did not take over"
        stack.procs[name].start()  # back as the standby
        tally.restarts["scheduler"] += 1


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_promises_hold_under_kills_of_workers_redis_web_and_scheduler(
    clean_db: str, tmp_path: Path, broker: str
) -> None:
    """Redis as the broker; then RabbitMQ, with summary failing everywhere (the partial reveal
    under kills)."""
    chunks = meeting(tmp_path / "audio", minutes=CHUNKS * 8 / 60, chunk_seconds=8).chunks
    assert len(chunks) >= CHUNKS
    chunks = chunks[:CHUNKS]
    settings = dict(SETTINGS)
    vhost = f"mina-chaos-{uuid.uuid4().hex[:8]}"
    amqp = rabbitmq_vhost(vhost) if broker == "rabbitmq" else None
    if amqp:
        settings["MINA_SIM_TASK_FAIL"] = "summary"
    stack = Stack(tmp_path, settings, amqp_url=amqp)
    tally = Tally()
    people = [Participant() for _ in range(CONVERSATIONS)]
    stop = threading.Event()
    stack.up()
    try:
        started = time.monotonic()
        threads = [
            threading.Thread(target=participant, args=(stack, chunks, tally, p)) for p in people
        ]
        faults = [
            threading.Thread(target=guarded(f, tally), args=(stack, tally, stop, started))
            for f in (kill_workers, crashes)
        ]
        for t in [*threads, *faults]:
            t.start()
        for t in [*threads, *faults]:
            t.join()
        assert [p.error for p in people if p.error] == []
        assert tally.errors == []
        outcome = wait_for(lambda: _all_outcomes(people), timeout=240, interval=1.0)
    except BaseException:
        stop.set()
        print(stack.tails())
        raise
    finally:
        stop.set()
        stack.down()
        if amqp:
            rabbitmq_vhost(vhost, delete=True)

    reveal = [(outcome[p.cid] - p.finished_at).total_seconds() for p in people if p.finished_at]
    reveal.sort()
    p95 = reveal[min(len(reveal) - 1, int(0.95 * len(reveal)))]
    with session_scope() as s:
        attempts = sum(s.scalars(select(Chunk.attempts)).all())
    print(
        f"\nchaos ({broker}): {CONVERSATIONS} conversations x {CHUNKS} chunks; "
        f"kills {dict(tally.kills)}; "
        f"restarts {dict(tally.restarts)}; client retries {tally.retries}; chunk attempts "
        f"{attempts} for {CONVERSATIONS * CHUNKS} chunks; finish -> reveal max {reveal[-1]:.1f}s "
        f"p95 {p95:.1f}s median {statistics.median(reveal):.1f}s"
    )
    check_promises(people)
    with session_scope() as s:
        outcomes = Counter(s.scalars(select(Conversation.processing_status)).all())
    if amqp:  # summary failed everywhere: partial reveals (or failed, if chunks failed too)
        assert outcomes["ready"] == 0 and outcomes["partial"] >= 1, outcomes
    assert sum(tally.kills.values()) >= 5 and tally.kills["redis"] == 1
    assert tally.kills["web"] == 1 and tally.kills["scheduler leader"] == 1
    assert tally.retries >= 1  # the web crash was met by uploads, which retried


def _all_outcomes(people: list[Participant]) -> dict[str, datetime] | None:
    with session_scope() as s:
        rows = s.execute(
            select(Event.conversation_id, Event.created_at).where(Event.type.in_(OUTCOMES))
        ).all()
    got = {cid: at for cid, at in rows}
    return got if all(p.cid in got for p in people) else None


def check_promises(people: list[Participant]) -> None:
    storage = build_storage(get_settings())
    with session_scope() as s:
        for p in people:
            conv = s.get(Conversation, p.cid)
            assert conv is not None
            of_conv = select(Chunk).where(Chunk.conversation_id == p.cid)
            rows = {c.index: c for c in s.scalars(of_conv)}
            ledger = s.scalars(select(Event).where(Event.conversation_id == p.cid)).all()
            # Every 2xx chunk has its row and an identical blob.
            assert sorted(rows) == sorted(p.accepted) == list(range(CHUNKS))
            for index, sha in p.accepted.items():
                row = rows[index]
                assert row.sha256 == sha
                assert hashlib.sha256(storage.get_bytes(row.storage_key)).hexdigest() == sha
            # Every chunk terminal; a failed one keeps its error.
            for row in rows.values():
                assert row.status in ("transcribed", "failed"), (row.index, row.status)
                if row.status == "failed":
                    assert row.error, row.index
            # Not stuck: the flag and an outcome.
            assert conv.is_all_chunks_transcribed is True
            assert conv.processing_status in ("ready", "partial", "failed")
            # The flag never before the last chunk's terminal event.
            (flag,) = [e for e in ledger if e.type == "transcription_complete"]
            terminal = [e for e in ledger if e.type in TERMINAL_EVENTS]
            assert terminal and flag.id > max(e.id for e in terminal)
            assert conv.transcribed_at is not None
            done = [r.finished_at for r in rows.values()]
            assert all(at and at <= conv.transcribed_at for at in done)
            # Exactly one outcome event, and one terminal event per chunk.
            assert len([e for e in ledger if e.type in OUTCOMES]) == 1
            per_chunk = Counter(e.payload["index"] for e in terminal)
            assert per_chunk == Counter(range(CHUNKS)), per_chunk
            # No duplicate segments in the conversation's transcript.
            keys = [(sg.start, sg.end, sg.text) for sg in results.raw_segments(s, p.cid)]
            assert len(keys) == len(set(keys))

"""Heartbeats (mina.pipeline.heartbeat): a live worker keeps its chunk or task past the
heartbeat timeout, a SIGKILLed one loses it after the timeout, not after the long lease."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mina.db import session_scope, utcnow
from mina.models import PostTask
from mina.settings import get_settings
from scheduler.service import build_repair
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.conversations import chunk_row, create, status, types, upload
from tests.fixtures.stack import wait_for

SIM = {"transcriber": "simulated", "sim_latency_seconds": 0.1, "language_provider": "simulated"}
BEAT = {"heartbeat_seconds": 0.5, "heartbeat_timeout_seconds": 2}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("speech"), minutes=0.5, chunk_seconds=10)


@pytest.mark.embedded
def test_a_live_worker_keeps_its_chunk_past_the_heartbeat_timeout(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    env(**{**SIM, "sim_latency_seconds": 6}, **BEAT, lease_seconds=600)
    workers(threads=1)
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, speech.chunks[0])
    wait_for(lambda: chunk_row(chunk_id).status == "processing", timeout=60)
    jobs = build_repair(get_settings())
    seen = []
    end = time.monotonic() + 4  # twice the timeout: only heartbeats keep the lease ahead
    while time.monotonic() < end and (row := chunk_row(chunk_id)).status == "processing":
        assert row.lease_until is not None
        seen.append(row.lease_until)
        assert row.lease_until > utcnow(), "the lease lapsed while the worker was alive"
        assert row.lease_until <= utcnow() + timedelta(seconds=2.5)  # short, not 600 s
        time.sleep(0.5)
    assert len(set(seen)) >= 3, seen  # renewed, not one long lease
    assert jobs.dispatch_stalled() == 0
    done = wait_for(lambda: (c := chunk_row(chunk_id)).status == "transcribed" and c, timeout=60)
    assert done.attempts == 1 and done.lease_until is None
    assert types(cid).count("chunk_transcribed") == 1


@pytest.mark.services_only  # SIGKILL needs worker processes
def test_chunk_of_a_sigkilled_worker_is_taken_back_after_the_timeout_not_the_lease(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    env(**{**SIM, "sim_latency_seconds": 120}, **BEAT, lease_seconds=600)
    first = workers(threads=1)
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, speech.chunks[0])
    wait_for(lambda: chunk_row(chunk_id).status == "processing", timeout=60)
    killed = utcnow()
    first.stop(signal.SIGKILL)

    env(sim_latency_seconds=0.1)
    workers(threads=1)
    lapsed = wait_for(
        lambda: (lease := chunk_row(chunk_id).lease_until) and lease < utcnow() and lease,
        timeout=30,
    )
    assert lapsed - killed < timedelta(seconds=2.5)  # the last heartbeat's timeout, not 600 s
    assert build_repair(get_settings()).dispatch_stalled() == 1
    done = wait_for(lambda: (c := chunk_row(chunk_id)).status == "transcribed" and c, timeout=60)
    assert done.attempts == 2 and done.error is None
    assert types(cid).count("chunk_transcribed") == 1


@pytest.mark.services_only  # SIGKILL needs worker processes
def test_task_of_a_sigkilled_worker_is_queued_again_after_the_timeout(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    # Summary would run 60 s: long beside the timeout, well inside its 600 s limit.
    env(**SIM, **BEAT, sim_task_latency="summary=60", summary_time_limit_seconds=600)
    first = workers(threads=4)
    cid, auth = create(client)
    for index, path in enumerate(speech.chunks[:2]):
        upload(client, cid, auth, index, path)
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202

    def summary() -> PostTask:
        with session_scope() as s:
            return s.scalars(
                select(PostTask).where(PostTask.conversation_id == cid, PostTask.name == "summary")
            ).one()

    def summary_running() -> bool:
        with session_scope() as s:
            return (
                s.scalar(
                    select(PostTask.status).where(
                        PostTask.conversation_id == cid, PostTask.name == "summary"
                    )
                )
                == "running"
            )

    wait_for(summary_running, timeout=120)
    time.sleep(2)  # a few heartbeats: the deadline moved with them
    row = summary()
    assert row.deadline_at is not None and row.started_at is not None
    assert row.deadline_at > row.started_at + timedelta(seconds=2)
    assert row.deadline_at < row.started_at + timedelta(seconds=600)
    first.stop(signal.SIGKILL)

    env(sim_task_latency="")
    workers(threads=4)
    jobs = build_repair(get_settings())
    wait_for(lambda: (d := summary().deadline_at) is not None and d < utcnow(), timeout=10)
    assert jobs.post_processing() >= 2  # put back to pending and queued again at once
    view = wait_for(
        lambda: (v := status(client, cid, auth))["processing_status"] == "ready" and v, timeout=120
    )
    assert view["tasks"]["summary"]["status"] == "done"
    assert summary().attempts == 2
    assert types(cid).count("post_transcription_reveal") == 1

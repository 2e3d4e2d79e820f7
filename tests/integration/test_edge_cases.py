"""Seed 001's edge cases not covered elsewhere (issue 19), one test each, on the real stack.

Covered elsewhere: the browser closes without finish (test_repair_jobs: auto-finish at the idle
timeout; test_scheduler: the scheduler process does it), the provider down for minutes
(test_providers_openai: the breaker opens, chunks wait without burning attempts, all complete),
finish twice and upload after finish (test_upload_api), a gap in the indexes
(test_repair_jobs: announced chunks that never come are given up after the grace, a late one
is refused).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from mina import db
from mina.models import Chunk
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.conversations import chunk_row, create, status, types, upload
from tests.fixtures.stack import wait_for

SIM = {"transcriber": "simulated", "sim_latency_seconds": 0.1, "language_provider": "simulated"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("speech"), minutes=0.5, chunk_seconds=10)


def silence(path: Path, seconds: float) -> Path:
    source = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", str(seconds)]
    encode = ["-c:a", "libopus", "-b:a", "24k", str(path)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *encode], check=True)
    return path


@pytest.mark.embedded
def test_silence_only_is_revealed_with_an_empty_transcript_and_a_note(
    client: Any, workers: Any, tmp_path: Path
) -> None:
    workers(threads=2)  # the real local transcriber (the test environment's default)
    cid, auth = create(client)
    for index in range(2):
        upload(client, cid, auth, index, silence(tmp_path / f"{index}.ogg", 10))
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    view = wait_for(
        lambda: (
            (v := status(client, cid, auth))["processing_status"] not in ("pending", "running")
            and v
        ),
        timeout=300,
    )
    assert view["status"] == "transcribed", view  # not transcription_failed
    assert view["processing_status"] in ("ready", "partial"), view
    transcript = client.get(f"/api/conversations/{cid}/transcript?format=txt", headers=auth)
    assert transcript.status_code == 200 and transcript.get_data(as_text=True).strip() == ""
    summary = client.get(f"/api/conversations/{cid}/summary", headers=auth)
    assert summary.status_code == 200
    assert "No speech was transcribed." in str(summary.get_json())
    assert types(cid).count("post_transcription_reveal") == 1


def test_finish_called_concurrently_finishes_once(app: Any, speech: Meeting) -> None:
    client = app.test_client()
    cid, auth = create(client)
    upload(client, cid, auth, 0, speech.chunks[0])
    answers: list[int] = []
    start = threading.Barrier(16)

    def finish() -> None:
        own = app.test_client()  # one client per thread, as sixteen tabs would be
        start.wait()
        r = own.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
        answers.append(r.status_code)

    threads = [threading.Thread(target=finish) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [202] * 16
    view = status(client, cid, auth)
    assert view["is_finished"] is True and view["expected_chunks"] == 1
    assert types(cid).count("conversation_finished") == 1


@pytest.mark.services_only  # the connection is a PostgreSQL backend terminated under the worker
def test_db_connection_dropped_in_a_workers_transaction_writes_nothing_and_is_retried(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    # Transcription takes 3 s: time to take the row's lock again before the completion.
    env(**{**SIM, "sim_latency_seconds": 3}, heartbeat_seconds=0.5, heartbeat_timeout_seconds=2)
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, speech.chunks[0])
    # Hold the chunk's row: the worker's completing UPDATE waits on it inside its transaction.
    engine = db.get_engine()
    holder = engine.connect()
    tx = holder.begin()
    holder.execute(select(Chunk.id).where(Chunk.id == chunk_id).with_for_update())
    workers(threads=1)

    def waiting_backends() -> list[int]:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )

    # The claim's UPDATE also waits on the lock: let it through first (release and take again
    # once the chunk is processing), so that the blocked transaction is the completion's.
    claimers = wait_for(waiting_backends, timeout=60)
    tx.rollback()
    wait_for(lambda: chunk_row(chunk_id).status == "processing", timeout=30)
    tx = holder.begin()
    holder.execute(select(Chunk.id).where(Chunk.id == chunk_id).with_for_update())
    # The completion and the heartbeat's renewal wait on it now.
    blocked = wait_for(lambda: len(b := waiting_backends()) >= 2 and b, timeout=60)
    assert claimers
    with engine.connect() as conn:
        for pid in blocked:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
    tx.rollback()
    holder.close()

    # The completion rolled back: the chunk goes back to the queue and the actor retries it.
    done = wait_for(lambda: (c := chunk_row(chunk_id)).status == "transcribed" and c, timeout=60)
    assert done.attempts == 2  # attempt 1 wrote nothing: its completion would have ended it
    assert done.error is None and (done.text or "").startswith("Simulated sentence")
    ledger = types(cid)
    assert ledger.count("chunk_transcribed") == 1 and "chunk_failed" not in ledger

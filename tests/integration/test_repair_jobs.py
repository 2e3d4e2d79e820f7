"""The repair jobs of the scheduler (DESIGN §8), each called directly against the real stack:
PostgreSQL, Redis, real Dramatiq workers, real HTTP and audio. Where a boundary matters the job
gets an explicit `now`; crashes are real SIGKILLs of worker process groups."""

from __future__ import annotations

import io
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mina import conversations, events
from mina.db import session_scope, utcnow
from mina.dispatch import NullDispatcher
from mina.models import Conversation, PostTask
from mina.pipeline import finish as finish_service
from mina.pipeline.task_state import NAMES as TASK_NAMES
from mina.repair import Repair
from mina.settings import get_settings
from mina.storage import LocalStorage, Storage, build_storage
from scheduler.service import build_repair
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.conversations import (
    chunk_row,
    chunk_rows,
    create,
    events_of,
    set_chunk,
    status,
    types,
    upload,
)
from tests.fixtures.stack import wait_for

SIM = {"transcriber": "simulated", "sim_latency_seconds": 0.1, "language_provider": "simulated"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("speech"), minutes=0.5, chunk_seconds=10)


def repair() -> Repair:
    """The scheduler process's own wiring: Dramatiq dispatcher, configured storage."""
    return build_repair(get_settings())


def all_tasks_terminal(client: Any, cid: str, auth: dict[str, str]) -> dict[str, Any] | None:
    view = status(client, cid, auth)
    tasks = view["tasks"]
    done = len(tasks) == 6 and all(t["status"] in ("done", "failed") for t in tasks.values())
    return view if done else None


# --- 1. auto-finish -------------------------------------------------------------------------


@pytest.mark.embedded
def test_idle_conversation_is_finished_at_the_timeout_and_not_a_second_before(
    client: Any, env: Any, speech: Meeting
) -> None:
    env(idle_finish_seconds=300)
    cid, auth = create(client)
    upload(client, cid, auth, 0, speech.chunks[0])
    empty, _ = create(client)  # never a chunk: not a meeting that stalled, never auto-finished
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None
        last = conv.last_activity_at
    timeout = timedelta(seconds=300)
    jobs = repair()

    assert jobs.auto_finish(now=last + timeout - timedelta(seconds=1)) == 0
    assert status(client, cid, auth)["is_finished"] is False
    # Under the row lock the idle check is repeated: activity after the cutoff keeps it open.
    out = finish_service.finish_conversation(
        cid, None, jobs.dispatcher, idle_before=last - timedelta(seconds=1)
    )
    assert out["changed"] is False and status(client, cid, auth)["is_finished"] is False

    assert jobs.auto_finish(now=last + timeout) == 1
    view = status(client, cid, auth)
    assert view["is_finished"] is True and view["expected_chunks"] == 1
    assert jobs.auto_finish(now=last + timeout + timedelta(hours=1)) == 0
    assert types(cid).count("conversation_finished") == 1
    with session_scope() as s:
        untouched = s.get(Conversation, empty)
        assert untouched is not None and untouched.is_finished is False


# --- 2. dispatch ----------------------------------------------------------------------------


@pytest.mark.services_only  # SIGKILL needs worker processes
def test_chunk_of_a_sigkilled_worker_is_transcribed_after_its_lease_expires(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    env(**{**SIM, "sim_latency_seconds": 120}, lease_seconds=2)
    first = workers(threads=1)
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, speech.chunks[0])
    wait_for(lambda: chunk_row(chunk_id).status == "processing", timeout=60)
    first.stop(signal.SIGKILL)  # mid-transcription: the claim stays, nobody will finish it

    env(sim_latency_seconds=0.1)
    workers(threads=1)
    wait_for(lambda: (lease := chunk_row(chunk_id).lease_until) and lease < utcnow(), timeout=30)
    stalled = chunk_row(chunk_id)
    assert (stalled.status, stalled.attempts) == ("processing", 1)  # new workers got no message

    assert repair().dispatch_stalled() == 1
    done = wait_for(lambda: (c := chunk_row(chunk_id)).status == "transcribed" and c, timeout=60)
    assert done.attempts == 2 and done.error is None
    assert (done.text or "").startswith("Simulated sentence 1.")
    assert types(cid).count("chunk_transcribed") == 1


@pytest.mark.embedded
def test_chunk_past_the_attempt_cap_fails_with_a_clear_error(
    client: Any, env: Any, speech: Meeting
) -> None:
    env(chunk_max_attempts=3, dispatch_delay_seconds=60)
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, speech.chunks[0])
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    set_chunk(chunk_id, attempts=3, error="provider answered 503")
    jobs = repair()
    queued_at = chunk_row(chunk_id).queued_at
    assert jobs.dispatch_stalled(now=queued_at + timedelta(seconds=59)) == 0  # not stalled yet

    assert jobs.dispatch_stalled(now=queued_at + timedelta(seconds=60)) == 1
    view = status(client, cid, auth)
    assert view["status"] == "transcription_failed"  # the barrier ran after the give-up
    (failed,) = view["failed_chunks"]
    assert failed["error"] == "gave up after 3 attempts; last error: provider answered 503"
    assert failed["error_kind"] == "permanent"
    assert types(cid).count("chunk_failed") == 1
    assert jobs.dispatch_stalled(now=queued_at + timedelta(hours=1)) == 0


# --- 3 and 4. barrier and post-processing ---------------------------------------------------


@pytest.mark.embedded
def test_lost_barrier_and_lost_reveal_callback_still_end_revealed(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    env(**SIM, dispatch_callbacks="false")
    workers(threads=2)
    cid, auth = create(client)
    for index, path in enumerate(speech.chunks):
        upload(client, cid, auth, index, path)
    n = len(speech.chunks)
    wait_for(lambda: status(client, cid, auth)["chunks"].get("transcribed") == n, timeout=120)
    # The participant's finish committed, then its process died before the group and the
    # barrier: finished, every chunk terminal, and nothing left that would run the barrier.
    with session_scope() as s:
        finish_service.mark_finished(s, cid)
    assert status(client, cid, auth)["is_all_chunks_transcribed"] is False
    jobs = repair()

    assert jobs.settle_finished() == 1
    assert status(client, cid, auth)["status"] == "transcribed"
    # The barrier started post-processing; its group's reveal callback is dropped on purpose
    # (the task that finishes last reveals; the next test covers the reveal by the scheduler).
    wait_for(lambda: all_tasks_terminal(client, cid, auth), timeout=180)
    jobs.post_processing()
    view = status(client, cid, auth)
    assert view["processing_status"] == "ready" and view["progress"] == 100
    assert jobs.settle_finished() == 0 and jobs.post_processing() == 0
    seen = types(cid)
    assert seen.count("transcription_complete") == 1
    assert seen.count("post_transcription_reveal") == 1


@pytest.mark.embedded
def test_announced_chunks_that_never_come_are_given_up_after_the_grace(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    env(**SIM, missing_chunk_grace_seconds=900)
    workers(threads=2)
    cid, auth = create(client)
    upload(client, cid, auth, 0, speech.chunks[0])
    upload(client, cid, auth, 2, speech.chunks[2])
    r = client.post(f"/api/conversations/{cid}/finish", json={"expected_chunks": 4}, headers=auth)
    assert r.status_code == 202, r.get_json()
    wait_for(lambda: status(client, cid, auth)["chunks"].get("transcribed") == 2, timeout=60)
    # Chunks 1 and 3 never come: without the policy the barrier would wait forever.
    assert status(client, cid, auth)["is_all_chunks_transcribed"] is False
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None
        last = conv.last_activity_at
    jobs = repair()

    assert jobs.give_up_missing(now=last + timedelta(seconds=899)) == 0
    assert status(client, cid, auth)["expected_chunks"] == 4
    assert jobs.give_up_missing(now=last + timedelta(seconds=900)) == 1
    view = status(client, cid, auth)
    assert view["is_all_chunks_transcribed"] is True and view["status"] == "transcribed"
    assert view["expected_chunks"] == 2
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None and conv.error is not None
        assert conv.error.startswith("chunk(s) 1, 3 of 4 never arrived")
    missing = [e for e in events_of(cid) if e.type == "chunks_missing"]
    assert len(missing) == 1 and missing[0].payload == {"missing": [1, 3], "expected": 4}
    assert jobs.give_up_missing(now=last + timedelta(hours=1)) == 0  # once
    # A chunk that comes after the transcription completed is refused, not silently ignored.
    with speech.chunks[1].open("rb") as fh:
        late = client.post(
            f"/api/conversations/{cid}/chunks",
            data={"index": "1", "file": (fh, speech.chunks[1].name)},
            headers=auth,
            content_type="multipart/form-data",
        )
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "finished"
    assert status(client, cid, auth)["chunks"].get("transcribed") == 2
    wait_for(lambda: status(client, cid, auth)["processing_status"] in ("ready", "partial"))
    assert types(cid).count("post_transcription_reveal") == 1


@pytest.mark.embedded
def test_reveal_left_undone_by_a_dead_worker_is_done_once(clean_db: str) -> None:
    # The worker of the last task stored its result, then died before revealing; the group's
    # callback died with it. Every task is terminal, the conversation still `running`.
    with session_scope() as s:
        conv, _ = conversations.create(s, "reveal")
        cid = conv.id
        conv.status, conv.is_finished, conv.is_all_chunks_transcribed = "transcribed", True, True
        conv.processing_status = "running"
        for name in TASK_NAMES:
            failed = name == "tasks"
            s.add(
                PostTask(
                    conversation_id=cid,
                    name=name,
                    status="failed" if failed else "done",
                    error="permanent: simulated failure of tasks" if failed else None,
                    result=None if failed else {},
                )
            )
    jobs = repair()
    assert jobs.post_processing() == 1
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None and conv.processing_status == "partial"
        assert conv.revealed_at is not None and conv.reveal_count == 1
    (reveal,) = [e for e in events_of(cid) if e.type == "post_transcription_reveal"]
    assert reveal.payload["failed_tasks"] == ["tasks"]
    assert jobs.post_processing() == 0


@pytest.mark.services_only  # SIGKILL needs worker processes
def test_task_of_a_dead_worker_runs_again_then_fails_at_the_cap_and_the_reveal_happens(
    client: Any, workers: Any, env: Any, speech: Meeting
) -> None:
    env(**SIM, sim_task_hang="summary", summary_time_limit_seconds=600, task_max_attempts=2)
    w = workers(threads=4)
    cid, auth = create(client)
    for index, path in enumerate(speech.chunks[:2]):
        upload(client, cid, auth, index, path)
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202

    def summary_running(attempt: int) -> bool:
        tasks = status(client, cid, auth)["tasks"]
        rest = [t["status"] for name, t in tasks.items() if name != "summary"]
        return (
            len(rest) == 5
            and set(rest) <= {"done", "failed"}
            and tasks["summary"]["status"] == "running"
            and summary_row().attempts == attempt
        )

    def summary_row() -> PostTask:
        with session_scope() as s:
            return s.scalars(
                select(PostTask).where(PostTask.conversation_id == cid, PostTask.name == "summary")
            ).one()

    wait_for(lambda: summary_running(1), timeout=180)
    w.stop(signal.SIGKILL)  # the worker running summary dies: its row stays `running`
    deadline = summary_row().deadline_at
    assert deadline is not None
    jobs = repair()
    assert jobs.post_processing(now=deadline - timedelta(seconds=1)) == 0

    # Attempt 1 of 2: back to pending and queued again (its start is older than the delay).
    later = deadline + timedelta(seconds=get_settings().dispatch_delay_seconds)
    assert jobs.post_processing(now=later) == 2  # summary back to pending, queued again
    row = summary_row()
    assert row.status == "pending" and "attempt 1 did not finish" in (row.error or "")
    assert status(client, cid, auth)["processing_status"] == "running"  # no reveal yet
    workers(threads=4)  # a new worker takes it: it hangs again (the simulated hang)
    wait_for(lambda: summary_running(2), timeout=60)

    # Attempt 2 of 2 past its deadline: failed, and the reveal happens. The worker is alive
    # and its heartbeat renews the deadline, up to the time limit after the start: the cap.
    started = summary_row().started_at
    assert started is not None
    deadline = started + timedelta(seconds=600 + 5)
    assert jobs.post_processing(now=deadline + timedelta(seconds=1)) == 2  # failed, revealed
    view = status(client, cid, auth)
    assert view["processing_status"] == "partial"
    assert view["tasks"]["summary"]["status"] == "failed"
    assert "did not finish before its deadline" in view["tasks"]["summary"]["error"]
    (reveal,) = [e for e in events_of(cid) if e.type == "post_transcription_reveal"]
    assert reveal.payload["failed_tasks"] == ["summary"]
    assert jobs.post_processing(now=deadline + timedelta(hours=1)) == 0


# --- 5. relay -------------------------------------------------------------------------------


class Recorder:
    """An emitter that keeps what it is given (the real one is Socket.IO's, in mina.realtime)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def emit(self, event: str, data: dict[str, Any], room: str) -> None:
        self.sent.append((event, data, room))


@pytest.mark.embedded
def test_relay_emits_what_no_process_emitted_once(clean_db: str) -> None:
    events.relay.set_emitter(None)
    with session_scope() as s:
        conv, _ = conversations.create(s, "relay")
        cid = conv.id
        for i in range(3):
            events.record(s, cid, "chunk_received", {"index": i})
    made = events_of(cid)
    jobs = repair()
    assert jobs.relay(now=utcnow() + timedelta(minutes=1)) == 0  # no emitter in this process
    recorder = Recorder()
    events.relay.set_emitter(recorder)
    try:
        assert jobs.relay(now=made[0].created_at + timedelta(seconds=1)) == 0  # still fresh
        assert len(made) == 4  # conversation_created and three chunk_received
        assert jobs.relay(now=utcnow() + timedelta(minutes=1)) == len(made)
        room = f"conversation:{cid}"
        ledger = [
            (event, data, to) for event, data, to in recorder.sent if event != "dashboard_refresh"
        ]
        sent = [(event, data["id"], to) for event, data, to in ledger]
        assert sent == [(e.type, e.id, room) for e in made]
        assert all(e.emitted_at is not None for e in events_of(cid))
        assert events.relay.flush()
        refresh = [data for event, data, to in recorder.sent if event == "dashboard_refresh"]
        assert refresh and cid in refresh[-1]["conversation_ids"]
        assert jobs.relay(now=utcnow() + timedelta(minutes=2)) == 0
    finally:
        events.relay.set_emitter(None)


# --- 6. blobs -------------------------------------------------------------------------------


@pytest.mark.embedded
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_old_orphan_blobs_are_deleted_referenced_and_young_ones_kept(
    request: pytest.FixtureRequest, kind: str, clean_db: str, env: Any, tmp_path: Path
) -> None:
    env(blob_grace_seconds=3600, scheduler_batch_size=2)
    storage: Storage = (
        LocalStorage(tmp_path / "blobs")
        if kind == "local"
        else request.getfixturevalue("s3_storage")
    )
    with session_scope() as s:
        conv, _ = conversations.create(s, "blobs")
        cid = conv.id
        conv.merged_audio_key = f"conversations/{cid}/merged.ogg"
        # Merge has not run yet: the normalized copies transcription kept are still wanted.
        waiting, _ = conversations.create(s, "still running")
        waiting.processing_status = "running"
        # Every chunk failed: post-processing never ran, nothing will delete its copies.
        dead, _ = conversations.create(s, "transcription failed")
        dead.status, dead.processing_status = "transcription_failed", "failed"
        rows = chunk_rows(
            cid,
            ["transcribed", "processing", "failed"],
            key="conversations/{cid}/chunks/{i:06d}-{i:016d}.ogg",
        )
        s.add_all(rows)
        s.flush()
        busy, failed = rows[1].id, rows[2].id
    referenced = {r.storage_key for r in rows} | {
        f"conversations/{cid}/merged.ogg",
        f"pieces/{busy}/0000.wav",  # its chunk is still being transcribed
        f"conversations/{waiting.id}/normalized/000000.wav",
        f"conversations/{waiting.id}/features/000000.npz",  # diarize has not run yet
    }
    unknown = {f"conversations/{cid}/notes.txt", "exports/report.json"}  # not our layouts
    orphans = {
        f"conversations/{cid}/chunks/000003-{3:016d}.ogg",  # a row that never committed
        "conversations/gone/chunks/000000-0000000000000000.ogg",  # a deleted conversation
        f"pieces/{failed}/0000.wav",  # left by a chunk that failed
        f"conversations/{dead.id}/normalized/000001.wav",  # post-processing is over
        f"conversations/{dead.id}/features/000001.npz",
    }
    for key in referenced | unknown | orphans:
        storage.put(key, io.BytesIO(b"blob"))
    jobs = Repair(get_settings(), NullDispatcher(), storage)

    def keys() -> set[str]:
        return {b.key for b in storage.list("")}

    assert jobs.sweep_blobs(now=utcnow()) == 0  # every orphan is younger than the grace period
    assert keys() == referenced | unknown | orphans
    later = utcnow() + timedelta(seconds=3600 + 60)
    assert jobs.sweep_blobs(now=later) == 2  # bounded by the batch size
    assert jobs.sweep_blobs(now=later) == 2
    assert jobs.sweep_blobs(now=later) == 1
    assert jobs.sweep_blobs(now=later) == 0
    assert keys() == referenced | unknown


# --- 7. async provider jobs -----------------------------------------------------------------


@pytest.mark.embedded
def test_provider_job_without_webhook_is_polled_then_failed(
    client: Any, env: Any, speech: Meeting
) -> None:
    env(provider_job_timeout_seconds=900, provider_job_max_polls=2)
    cid, auth = create(client)
    late, fresh = (upload(client, cid, auth, i, speech.chunks[i]) for i in (0, 1))
    held = {"status": "processing", "attempts": 1, "lease_until": utcnow() + timedelta(hours=1)}
    set_chunk(late, **held, provider="assemblyai", provider_job_id="job-42",
              provider_submitted_at=utcnow() - timedelta(seconds=901))  # fmt: skip
    set_chunk(fresh, **held, provider="assemblyai", provider_job_id="job-43",
              provider_submitted_at=utcnow())  # fmt: skip
    assert repair().poll_provider_jobs() == 0  # the default hook polls nothing
    assert chunk_row(late).provider_polls == 0

    polled: list[str] = []
    jobs = Repair(
        get_settings(), NullDispatcher(), build_storage(get_settings()), poll_provider=polled.append
    )
    assert jobs.poll_provider_jobs() == 1
    assert jobs.poll_provider_jobs() == 1
    assert polled == [late, late] and chunk_row(late).provider_polls == 2
    assert jobs.poll_provider_jobs() == 1  # no answer after two polls: failed
    row = chunk_row(late)
    assert row.status == "failed"
    assert row.error == "assemblyai job job-42: no result after 900s and 2 poll(s)"
    assert jobs.poll_provider_jobs() == 0 and polled == [late, late]
    assert chunk_row(fresh).status == "processing"
    assert types(cid).count("chunk_failed") == 1

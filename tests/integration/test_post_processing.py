"""Post-processing (DESIGN §4): the parallel group, the reveal rule, limits, exactly-once.

Real PostgreSQL, Redis and `dramatiq workers.actors` subprocesses (or the embedded profile's
SQLite, StubBroker and in-process workers for the tests marked `embedded`); real audio made with
espeak-ng and ffmpeg; the simulated transcriber and language provider with set latencies,
except where real speech matters.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from mina import audio, probe
from mina.db import session_scope
from mina.dispatch import NullDispatcher
from mina.errors import Conflict, PermanentError, TransientError
from mina.models import Chunk, Conversation, Event, PostTask
from mina.pipeline import post, runner, task_state
from mina.pipeline.task_state import NAMES as TASK_NAMES
from mina.settings import get_settings
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.conversations import chunk_rows
from tests.fixtures.stack import OPERATOR, ROOT, bearer, wait_for

USER_FACING = ("refinement", "analytics", "tasks", "summary")
LANGUAGE = ("refinement", "tasks", "summary")
REVEALS = ("post_transcription_reveal", "post_transcription_failed")
FAST = {"transcriber": "simulated", "sim_latency_seconds": 0.02, "language_provider": "simulated"}


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_minute(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    """Alice and Bob, about a minute, in 30 s Ogg chunks (the default meeting's commitments)."""
    return meeting(tmp_path_factory.mktemp("one-minute"), minutes=1.0, chunk_seconds=30)


def create(client: Any) -> tuple[str, dict[str, str]]:
    r = client.post("/api/conversations", json={"title": "weekly sync"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    return body["id"], bearer(body["token"])


def upload_all(client: Any, cid: str, auth: dict[str, str], chunks: list[Path]) -> None:
    for index, path in enumerate(chunks):
        with path.open("rb") as fh:
            r = client.post(
                f"/api/conversations/{cid}/chunks",
                data={"index": str(index), "file": (fh, path.name)},
                headers=auth,
                content_type="multipart/form-data",
            )
        assert r.status_code == 202, r.get_json()


def finish(client: Any, cid: str, auth: dict[str, str]) -> None:
    r = client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    assert r.status_code == 202, r.get_json()


def record(client: Any, chunks: list[Path]) -> tuple[str, dict[str, str]]:
    cid, auth = create(client)
    upload_all(client, cid, auth, chunks)
    finish(client, cid, auth)
    return cid, auth


def ledger(cid: str) -> list[Event]:
    with session_scope() as s:
        return list(s.scalars(select(Event).where(Event.conversation_id == cid).order_by(Event.id)))


def types(cid: str) -> list[str]:
    return [e.type for e in ledger(cid)]


def reveals(cid: str) -> list[Event]:
    return [e for e in ledger(cid) if e.type in REVEALS]


def wait_revealed(cid: str, count: int = 1, timeout: float = 120.0) -> Event:
    found: list[Event] = wait_for(lambda: len(r := reveals(cid)) >= count and r, timeout=timeout)
    return found[-1]


def tasks_of(cid: str) -> dict[str, PostTask]:
    with session_scope() as s:
        return task_state.rows(s, cid)


def conversation(cid: str) -> Conversation:
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None
        return conv


def status(client: Any, cid: str, auth: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/api/conversations/{cid}", headers=auth)
    assert r.status_code == 200
    body: dict[str, Any] = r.get_json()
    return body


def drain() -> None:
    """Wait until both queues are empty and every message is acknowledged, twice in a row
    (a message finishing on one queue may enqueue on the other)."""
    from workers.broker import QUEUES, broker

    for _ in range(2):
        for queue in QUEUES:
            broker.join(queue, timeout=60_000)


def assert_task_events_precede_the_reveal(cid: str) -> None:
    events = ledger(cid)
    reveal_at = next(i for i, e in enumerate(events) if e.type in REVEALS)
    for name in TASK_NAMES:
        outcomes = [
            i for i, e in enumerate(events) if e.type in (f"{name}_ready", f"{name}_failed")
        ]
        assert outcomes, f"no outcome event for {name}"
        assert outcomes[0] < reveal_at, f"{name}'s outcome came after the reveal"


def in_tx(fn: Callable[[Any], None]) -> None:
    with session_scope() as s:
        fn(s)


def transcribed_conversation(client: Any, chunks: int = 1) -> str:
    """A conversation whose chunks are transcribed, made directly in the database."""
    cid, _ = create(client)

    def setup(s: Any) -> None:
        s.add_all(
            chunk_rows(
                cid,
                ["transcribed"] * chunks,
                key="missing/{cid}/{i}",
                duration=5.0,
                segments=[{"start": 0.0, "end": 5.0, "text": "I will send the notes."}],
            )
        )
        conv = s.get(Conversation, cid)
        conv.is_finished, conv.expected_chunks, conv.status = True, chunks, "transcribed"
        conv.is_all_chunks_transcribed = True

    in_tx(setup)
    return cid


# --- the group and the reveal -----------------------------------------------------------------


@pytest.mark.embedded
def test_tasks_overlap_and_reveal_once_after_every_outcome(
    client: Any, workers: Any, env: Any, one_minute: Meeting
) -> None:
    env(**FAST, sim_task_latency="refinement=2,analytics=1,tasks=2,summary=2")
    workers(threads=6)
    cid, auth = record(client, one_minute.chunks)
    reveal = wait_revealed(cid)

    assert reveal.type == "post_transcription_reveal"
    assert reveal.payload["status"] == "ready" and reveal.payload["failed_tasks"] == []
    tasks = tasks_of(cid)
    assert {n: t.status for n, t in tasks.items()} == {n: "done" for n in TASK_NAMES}
    # Parallel: the tasks' own durations add up to more than the time from start to reveal,
    # the language tasks ran at the same moment, and beside the chain.
    started = next(e for e in ledger(cid) if e.type == "post_transcription_started").created_at
    wall_ms = (reveal.created_at - started).total_seconds() * 1000
    assert sum(t.duration_ms or 0 for t in tasks.values()) > wall_ms
    for a, b in [*itertools.combinations(LANGUAGE, 2), *(("merge", n) for n in LANGUAGE)]:
        ta, tb = tasks[a], tasks[b]
        assert ta.started_at and tb.started_at and ta.finished_at and tb.finished_at
        assert ta.started_at < tb.finished_at and tb.started_at < ta.finished_at, (a, b)
    # Order and counts in the ledger.
    assert_task_events_precede_the_reveal(cid)
    seen = types(cid)
    for name in TASK_NAMES:
        assert seen.count(f"{name}_started") == 1 and seen.count(f"{name}_ready") == 1
    assert seen.count("post_transcription_started") == 1
    percents = [
        e.payload["percent"] for e in ledger(cid) if e.type == "post_transcription_progress"
    ]
    assert percents == sorted(percents) and percents[-1] == 100 and len(percents) == 6
    # What the participant sees.
    view = status(client, cid, auth)
    assert view["processing_status"] == "ready" and view["progress"] == 100
    assert set(view["tasks"]) == set(TASK_NAMES)
    for name, row in view["tasks"].items():
        assert row["status"] == "done" and row["attempts"] == 1 and row["error"] is None
        assert row["duration_ms"] >= (1000 if name in USER_FACING else 0)
    merge = tasks["merge"].result or {}
    assert merge["skipped_chunks"] == [] and merge["chunks"] == len(one_minute.chunks)
    ready = next(e for e in ledger(cid) if e.type == "summary_ready")
    assert ready.payload["result"]["title"]  # the result travels with the event


@pytest.mark.embedded
def test_one_failed_task_is_a_partial_reveal_and_a_retry_upgrades_it(
    client: Any, workers: Any, env: Any, one_minute: Meeting
) -> None:
    env(**FAST, sim_task_fail="summary")
    w = workers(threads=4)
    cid, auth = record(client, one_minute.chunks[:1])
    reveal = wait_revealed(cid)

    assert reveal.type == "post_transcription_reveal"
    assert reveal.payload["status"] == "partial"
    assert reveal.payload["failed_tasks"] == ["summary"]
    assert "simulated failure of summary" in reveal.payload["errors"]["summary"]
    assert_task_events_precede_the_reveal(cid)
    failed = next(e for e in ledger(cid) if e.type == "summary_failed")
    assert "simulated failure" in failed.payload["error"]
    view = status(client, cid, auth)
    assert view["processing_status"] == "partial"
    assert view["tasks"]["summary"]["status"] == "failed"
    assert "simulated failure of summary" in view["tasks"]["summary"]["error"]
    r = client.get(f"/api/conversations/{cid}/summary", headers=auth)
    assert r.status_code in (404, 409)  # nothing to show (the results API may not exist yet)

    # The operator fixes the cause and retries: only summary runs again, and the new reveal
    # upgrades partial to ready.
    w.stop()
    env(sim_task_fail="")
    workers(threads=4)
    assert post.retry_failed(cid, _dispatcher()) == ["summary"]
    reveal = wait_revealed(cid, count=2)
    assert reveal.payload["status"] == "ready" and reveal.payload["failed_tasks"] == []
    tasks = tasks_of(cid)
    assert tasks["summary"].status == "done" and tasks["summary"].attempts == 2
    assert tasks["summary"].error is None
    assert all(t.attempts == 1 for n, t in tasks.items() if n != "summary")
    assert conversation(cid).processing_status == "ready"
    assert conversation(cid).reveal_count == 2
    assert post.retry_failed(cid, _dispatcher()) == []  # nothing left to retry


def _dispatcher() -> Any:
    from workers.dispatch import DramatiqDispatcher

    return DramatiqDispatcher()


@pytest.mark.embedded
def test_two_failed_tasks_fail_the_conversation(
    client: Any, workers: Any, env: Any, one_minute: Meeting
) -> None:
    env(**FAST, sim_task_fail="summary,tasks")
    workers(threads=4)
    cid, auth = record(client, one_minute.chunks[:1])
    reveal = wait_revealed(cid)

    assert reveal.type == "post_transcription_failed"
    assert reveal.payload["status"] == "failed"
    assert reveal.payload["failed_tasks"] == ["tasks", "summary"]
    assert "post_transcription_reveal" not in types(cid)
    assert_task_events_precede_the_reveal(cid)
    assert status(client, cid, auth)["processing_status"] == "failed"


@pytest.mark.embedded
def test_a_hanging_task_is_failed_by_its_own_time_limit(
    client: Any, workers: Any, env: Any, one_minute: Meeting
) -> None:
    env(**FAST, summary_time_limit_seconds=2, sim_task_hang="summary")
    workers(threads=4)
    cid, auth = record(client, one_minute.chunks[:1])
    reveal = wait_revealed(cid, timeout=60)

    assert reveal.payload["status"] == "partial"
    assert reveal.payload["failed_tasks"] == ["summary"]
    summary = tasks_of(cid)["summary"]
    assert summary.status == "failed" and summary.error == "timeout: over 2s"
    # Interrupted by its 2 s limit (counted from the message's start, a little before the
    # work's), not by the simulated hang's own end 80 s later.
    assert summary.duration_ms is not None and 1500 <= summary.duration_ms < 20_000
    assert tasks_of(cid)["refinement"].status == "done"  # the others kept their own limits
    view = status(client, cid, auth)
    assert view["tasks"]["summary"]["error"] == "timeout: over 2s"


@pytest.mark.embedded
def test_duplicated_starts_groups_and_callbacks_give_one_reveal(
    client: Any, workers: Any, env: Any, one_minute: Meeting
) -> None:
    env(**FAST, sim_task_latency="merge=1,refinement=1.5,tasks=1.5,summary=3")
    workers(threads=6)
    cid, _ = record(client, one_minute.chunks[:1])
    wait_for(lambda: "post_transcription_started" in types(cid))
    dispatcher = _dispatcher()

    starts = _concurrently(8, lambda: post.start(cid, dispatcher))
    assert starts == [False] * 8
    dispatcher.post_process(cid, TASK_NAMES)  # two more groups, so three callbacks
    dispatcher.post_process(cid, TASK_NAMES)
    early = _concurrently(8, lambda: post.reveal(cid, get_settings()))
    assert early == [False] * 8  # tasks still running: every reveal defers
    wait_revealed(cid)
    late = _concurrently(16, lambda: post.reveal(cid, get_settings()))
    assert late == [False] * 16
    from workers import actors

    for _ in range(3):
        actors.reveal.send(cid)
    drain()

    seen = types(cid)
    assert sum(seen.count(t) for t in REVEALS) == 1
    assert seen.count("post_transcription_started") == 1
    for name in TASK_NAMES:
        assert seen.count(f"{name}_started") == 1 and seen.count(f"{name}_ready") == 1
    tasks = tasks_of(cid)
    # A duplicated pipeline waited for merge instead of running diarize without its audio.
    assert {n: (t.status, t.attempts) for n, t in tasks.items()} == {
        n: ("done", 1) for n in TASK_NAMES
    }
    assert conversation(cid).processing_status == "ready"
    assert conversation(cid).reveal_count == 1
    assert_task_events_precede_the_reveal(cid)


def _concurrently(n: int, call: Callable[[], bool]) -> list[bool]:
    gate = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        gate.wait()
        value = call()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.embedded
def test_concurrent_starts_and_reveals_have_one_winner(client: Any) -> None:
    cid = transcribed_conversation(client)
    wins = _concurrently(16, lambda: post.start(cid, NullDispatcher()))
    assert wins.count(True) == 1
    assert types(cid).count("post_transcription_started") == 1
    assert set(tasks_of(cid)) == set(TASK_NAMES)
    assert not post.reveal(cid, get_settings())  # nothing ran yet

    def settle(s: Any) -> None:
        for task in task_state.rows(s, cid).values():
            task.status = "failed" if task.name == "tasks" else "done"

    in_tx(settle)
    wins = _concurrently(32, lambda: post.reveal(cid, get_settings()))
    assert wins.count(True) == 1
    [reveal] = reveals(cid)
    assert reveal.payload["status"] == "partial" and reveal.payload["failed_tasks"] == ["tasks"]
    conv = conversation(cid)
    assert conv.processing_status == "partial" and conv.reveal_count == 1
    assert conv.revealed_at is not None


@pytest.mark.embedded
def test_retry_reruns_the_chain_after_a_failed_step(client: Any) -> None:
    cid = transcribed_conversation(client)
    assert post.start(cid, NullDispatcher())

    def settle(s: Any) -> None:
        for task in task_state.rows(s, cid).values():
            task.status = "failed" if task.name in ("merge", "diarize") else "done"

    in_tx(settle)
    assert post.reveal(cid, get_settings())
    assert conversation(cid).processing_status == "ready"  # merge/diarize are not user-facing
    # analytics ran without speakers: it reruns with the chain.
    assert post.retry_failed(cid, NullDispatcher()) == ["merge", "diarize", "analytics"]
    assert tasks_of(cid)["refinement"].status == "done"
    assert conversation(cid).processing_status == "running"
    with pytest.raises(Conflict, match="still running"):
        post.retry_failed(cid, NullDispatcher())


# --- the runner: retries, failures, the chain -------------------------------------------------


@pytest.mark.embedded
def test_runner_retries_transient_errors_only_and_always_returns(client: Any, env: Any) -> None:
    env(provider_attempts=3)
    settings = get_settings()
    cid = transcribed_conversation(client)
    assert post.start(cid, NullDispatcher())
    calls: dict[str, int] = {}

    def flaky(name: str, fail_times: int, error: Exception) -> runner.Work:
        def work() -> dict[str, Any]:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] <= fail_times:
                raise error
            return {"ok": True}

        return work

    busy = TransientError("429 from the provider")
    assert runner.run(cid, "summary", flaky("summary", 2, busy), settings) == "done"
    assert calls["summary"] == 3
    bad = PermanentError("401 from the provider")
    assert runner.run(cid, "refinement", flaky("refinement", 9, bad), settings) == "failed"
    assert calls["refinement"] == 1
    down = TransientError("503 from the provider")
    assert runner.run(cid, "tasks", flaky("tasks", 9, down), settings) == "failed"
    assert calls["tasks"] == 3
    bug = ZeroDivisionError("division by zero")
    assert runner.run(cid, "merge", flaky("merge", 9, bug), settings) == "failed"
    # analytics waits for diarize, which is still pending: not run, still pending.
    assert runner.run(cid, "analytics", flaky("analytics", 0, bug), settings) == "skipped"
    assert runner.run(cid, "summary", flaky("summary", 0, bug), settings) == "skipped"  # done

    tasks = tasks_of(cid)
    assert tasks["summary"].status == "done" and tasks["summary"].result == {"ok": True}
    assert tasks["refinement"].error == "permanent: 401 from the provider"
    assert tasks["tasks"].error == "transient: 503 from the provider after 3 tries"
    assert (tasks["merge"].error or "").startswith("internal: ZeroDivisionError")
    assert tasks["analytics"].status == "pending" and tasks["analytics"].attempts == 0
    assert all(t.attempts == 1 for n, t in tasks.items() if n not in ("diarize", "analytics"))
    failed = {e.payload["task"] for e in ledger(cid) if e.type.endswith("_failed")}
    assert failed == {"refinement", "tasks", "merge"}
    # once merge is terminal (failed), diarize may run
    assert runner.run(cid, "diarize", flaky("diarize", 0, bug), settings) == "done"


# --- merge ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory: pytest.TempPathFactory, one_minute: Meeting) -> list[Path]:
    """Ten minutes of speech: the one-minute meeting looped, cut into 20 chunks of 30 s."""
    workdir = tmp_path_factory.mktemp("ten-minutes")
    looped = workdir / "looped.wav"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-stream_loop", "-1"),
            *("-i", str(one_minute.path), "-t", "600", "-ac", "1", "-ar", "16000"),
            *("-y", str(looped)),
        ],
        check=True,
    )
    chunks = audio.split(looped, 30.0, workdir / "chunks", ext="ogg")
    assert len(chunks) == 20
    return chunks


@pytest.mark.embedded
def test_merge_of_a_ten_minute_conversation(
    client: Any, workers: Any, env: Any, app: Any, ten_minutes: list[Path]
) -> None:
    env(**FAST)
    workers(threads=4)
    cid, _ = record(client, ten_minutes)
    reveal = wait_revealed(cid, timeout=300)
    assert reveal.payload["status"] == "ready", reveal.payload

    with session_scope() as s:
        chunks = s.scalars(select(Chunk).where(Chunk.conversation_id == cid)).all()
        recorded = sum(c.duration or 0.0 for c in chunks)
        keys = [c.storage_key for c in chunks]
    merged = tasks_of(cid)["merge"].result or {}
    assert merged["chunks"] == 20 and merged["skipped_chunks"] == []
    assert abs(merged["duration"] - 600.0) <= 0.5
    assert abs(merged["duration"] - recorded) <= 0.5
    assert conversation(cid).merged_audio_key == merged["key"]
    assert conversation(cid).duration == pytest.approx(merged["duration"], abs=0.01)
    storage = app.extensions["mina"].storage
    path = storage.local_path(merged["key"])
    assert path is not None and probe.sniff(path.read_bytes()[:64]) == "audio/ogg"
    assert abs(audio.duration(path) - 600.0) <= 0.5
    assert path.stat().st_size < 600 * 32_000 / 8 * 1.2  # compressed (32 kb/s Opus)
    assert all(storage.exists(k) for k in keys)  # originals kept

    # Merging again in a fresh process: its memory does not grow with the audio (10 min of
    # 16 kHz PCM would be 19 MB); ffmpeg's own peak over an hour is tests/unit/test_audio.py's.
    assert _merge_rss_growth_mb(cid) < 12


_MERGE_SCRIPT = """
import json, sys
from mina import db
from mina.settings import get_settings
from mina.storage import build_storage
from mina.dispatch import NullDispatcher
from mina.services import Services
from mina.pipeline.work import merge
from mina.providers import get_transcriber

def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
settings = get_settings()
db.configure(settings.resolved_database_url)
svc = Services(settings, build_storage(settings), NullDispatcher(), get_transcriber(settings))
before = rss_mb("VmRSS:")
merge(sys.argv[1], svc)
print(json.dumps({"growth_mb": rss_mb("VmHWM:") - before}))
"""


def _merge_rss_growth_mb(cid: str) -> float:
    """Run `merge` again in a fresh process: how far its peak RSS rose above the start's."""
    out = subprocess.run(
        [sys.executable, "-c", _MERGE_SCRIPT, cid],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        check=True,
        timeout=300,
    )
    figures = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return float(figures["growth_mb"])


@pytest.mark.embedded
def test_merge_puts_silence_for_a_failed_chunk_and_lists_it(
    client: Any, workers: Any, env: Any, app: Any, one_minute: Meeting
) -> None:
    env(**FAST)
    cid, auth = create(client)
    upload_all(client, cid, auth, one_minute.chunks)
    with session_scope() as s:
        lost = s.scalars(select(Chunk).where(Chunk.conversation_id == cid, Chunk.index == 0)).one()
        lost_key = lost.storage_key
        recorded = sum(
            c.duration or 0.0
            for c in s.scalars(select(Chunk).where(Chunk.conversation_id == cid)).all()
        )
    app.extensions["mina"].storage.delete(lost_key)  # the first chunk cannot be transcribed
    workers(threads=4)
    finish(client, cid, auth)
    reveal = wait_revealed(cid)

    assert reveal.payload["status"] == "ready"
    merged = tasks_of(cid)["merge"].result or {}
    assert merged["skipped_chunks"] == [0]
    assert merged["chunks"] == len(one_minute.chunks)
    # The failed chunk's time is silence, so the audio and the transcript share one timeline.
    assert abs(merged["duration"] - recorded) <= 0.5
    ready = next(e for e in ledger(cid) if e.type == "merge_ready")
    assert ready.payload["result"]["skipped_chunks"] == [0]  # listed where users see it
    # A chunk without features (it failed): diarize decodes the merged audio instead.
    diarized = tasks_of(cid)["diarize"].result or {}
    assert diarized["features"] == "merged audio" and diarized["speakers"] >= 1


# --- diarization and action items on real speech ---------------------------------------------


def _voiced_script(m: Meeting) -> list[tuple[float, float, str]]:
    """Each script line trimmed to where its voice is audible (espeak pads with silence)."""
    signal = audio.read_pcm(m.path)
    sr = audio.SAMPLE_RATE
    out = []
    for line in m.script.lines:
        a, b = int(line.start * sr), int(line.end * sr)
        loud = np.flatnonzero(np.abs(signal[a:b]) > 0.01)
        if loud.size:
            out.append(((a + loud[0]) / sr, (a + loud[-1]) / sr, line.speaker))
    return out


def speech_accuracy(truth: list[tuple[float, float, str]], turns: list[dict[str, Any]]) -> float:
    """Share of true speech time given to the right speaker, under the best label mapping."""
    step = 0.01
    n = int(max(end for _, end, _ in truth) / step) + 1
    names = sorted({who for *_, who in truth})
    labels = sorted({t["speaker"] for t in turns})
    ref, hyp = np.full(n, -1), np.full(n, -1)
    for start, end, who in truth:
        ref[int(start / step) : int(end / step)] = names.index(who)
    for t in turns:
        hyp[int(t["start"] / step) : min(n, int(t["end"] / step))] = labels.index(t["speaker"])
    speech = ref >= 0
    size = max(len(names), len(labels))
    best = 0.0
    for perm in itertools.permutations(range(size)):
        mapped = np.where(hyp >= 0, np.array(perm)[np.maximum(hyp, 0)], -1)
        best = max(best, float(np.mean(mapped[speech] == ref[speech])))
    return best


@pytest.mark.embedded
def test_diarization_through_the_pipeline_finds_both_voices(
    client: Any, workers: Any, env: Any, app: Any, one_minute: Meeting
) -> None:
    env(**FAST)
    workers(threads=4)
    cid, _ = record(client, one_minute.chunks)
    assert wait_revealed(cid).payload["status"] == "ready"

    tasks = tasks_of(cid)
    diarized = tasks["diarize"].result or {}
    assert diarized["source"] == "diarization" and diarized["speakers"] == 2
    # From the features each chunk's transcription kept, which are gone once used.
    assert diarized["features"] == "chunks"
    assert not list(app.extensions["mina"].storage.list(f"conversations/{cid}/features/"))
    accuracy = speech_accuracy(_voiced_script(one_minute), diarized["turns"])
    print(f"diarization through the pipeline: {accuracy:.1%} of speech time right")
    assert accuracy >= 0.9, accuracy
    # Transcript segments took speakers from the turns; analytics used them.
    assert {s["speaker"] for s in diarized["segments"]} <= {"S1", "S2", "Unknown"}
    # One voice per speaker, kept for known speakers (docs/memory.md), unit length.
    voices = diarized["voices"]
    assert set(voices) == {"S1", "S2"} and all(len(v) == 192 for v in voices.values())
    assert abs(sum(x * x for x in voices["S1"]) - 1.0) < 1e-3
    analytics = tasks["analytics"].result or {}
    assert analytics["diarized"] is True
    assert {s["speaker"] for s in analytics["speakers"]} >= {"S1", "S2"}


@pytest.mark.embedded
def test_without_the_speaker_model_diarize_fails_saying_how_to_install_it(
    client: Any, workers: Any, env: Any, app: Any, one_minute: Meeting, tmp_path: Path
) -> None:
    """What a user sees when the model was never fetched (here: MINA_SPEAKER_MODEL points
    nowhere): chunks are transcribed without features, diarize fails with the reason, the
    meeting is still revealed and analytics runs on the transcript without speakers."""
    env(**FAST, speaker_model=str(tmp_path / "missing" / "campplus_cn_en_common.pt"))
    workers(threads=4)
    cid, _ = record(client, one_minute.chunks)
    assert wait_revealed(cid).payload["status"] == "ready"

    tasks = tasks_of(cid)
    assert tasks["diarize"].status == "failed"
    assert "MINA_SPEAKER_MODEL" in (tasks["diarize"].error or "")
    assert "is not a file" in (tasks["diarize"].error or "")
    analytics = tasks["analytics"].result or {}
    assert analytics["diarized"] is False
    assert not list(app.extensions["mina"].storage.list(f"conversations/{cid}/features/"))


@pytest.mark.embedded
def test_local_action_items_include_the_planted_commitments(
    client: Any, workers: Any, env: Any, one_minute: Meeting
) -> None:
    env(transcriber="local", language_provider="local")
    workers(threads=2)
    cid, _ = record(client, one_minute.chunks)
    assert wait_revealed(cid, timeout=300).payload["status"] == "ready"

    items = (tasks_of(cid)["tasks"].result or {})["items"]
    texts = [i["text"].lower() for i in items]
    meeting_day = conversation(cid).created_at.date()

    def item(*words: str) -> dict[str, Any]:
        found = [i for i, t in zip(items, texts, strict=True) if all(w in t for w in words)]
        assert found, f"no action item with {words} in {texts}"
        return found[0]

    report = item("send", "report")
    roadmap = item("update", "roadmap")
    item("search feature")
    assert roadmap["owner"] == "Bob"
    for found, weekday in ((report, 4), (roadmap, 0)):  # by Friday, by next Monday
        assert found["due"], (found, items)
        due = dt.date.fromisoformat(found["due"])
        assert due >= meeting_day and due.weekday() == weekday
    # "I'll send the report" belongs to whoever said it, decided after diarization and stored
    # (Alice speaks first, so she is S1), served by the name the conversation gave her
    assert report["owner_speaker"] == "S1" and report["owner_basis"] == "commitment"
    served = client.get(f"/api/conversations/{cid}/tasks", headers=OPERATOR).get_json()["items"]
    report_served = next(i for i in served if "report" in i["text"].lower())
    assert (report_served["owner"], report_served["owner_speaker"]) == ("Alice", "S1")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_diarize_reads_every_chunks_features_from_either_storage(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path
) -> None:
    """What transcription keeps per chunk, fetched back (eight at a time on S3) and joined;
    one missing chunk means the merged audio is decoded instead (None here)."""
    from mina.insights import features
    from mina.pipeline import work
    from mina.pipeline.transcribe import features_key
    from mina.providers import get_transcriber
    from mina.services import Services
    from mina.storage import LocalStorage

    storage = (
        LocalStorage(tmp_path / "blobs")
        if kind == "local"
        else request.getfixturevalue("s3_storage")
    )
    rng = np.random.default_rng(7)
    chunks = [Chunk(conversation_id="c", index=i, status="transcribed") for i in range(12)]
    seconds = [3.0 + 0.0023 * i for i in range(12)]
    for chunk, length in zip(chunks, seconds, strict=True):
        vectors = rng.normal(size=(3, 192)).astype(np.float32)
        kept = features.Features(
            speech=np.array([[0.2, length - 0.2]]),
            windows=np.array([[0.2, 1.7], [0.95, 2.45], [1.3, 2.8]]),
            embeddings=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
            seconds=length,
        )
        path = tmp_path / f"{chunk.index}.npz"
        features.save(kept, path)
        storage.put_file(features_key("c", chunk.index), path)
    settings = get_settings()
    svc = Services(settings, storage, NullDispatcher(), get_transcriber(settings))

    joined = work._chunk_features(svc, chunks)
    assert joined is not None
    assert joined.seconds == pytest.approx(sum(seconds))
    assert len(joined) == 36
    starts = np.cumsum([0.0, *seconds[:-1]])
    assert np.allclose(joined.windows[::3, 0], starts + 0.2)  # each chunk on the meeting's clock

    storage.delete(features_key("c", 5))
    assert work._chunk_features(svc, chunks) is None
    assert work._chunk_features(svc, [*chunks[:5], *chunks[6:]]) is not None  # order kept, 11

"""The chunk pipeline end to end: HTTP uploads, real workers, the barrier, the ledger."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mina.db import session_scope
from mina.models import Chunk, Conversation, Event
from tests.fixtures.audio import Meeting, meeting, wer
from tests.fixtures.conversations import chunk_rows
from tests.fixtures.stack import bearer, drain, wait_for

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("meeting"), minutes=1.5, chunk_seconds=30)


def create(client: Any) -> tuple[str, dict[str, str]]:
    r = client.post("/api/conversations", json={"title": "weekly sync"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    return body["id"], bearer(body["token"])


def upload(client: Any, cid: str, auth: dict[str, str], index: int, path: Path) -> Any:
    with path.open("rb") as fh:
        return client.post(
            f"/api/conversations/{cid}/chunks",
            data={"index": str(index), "file": (fh, path.name)},
            headers=auth,
            content_type="multipart/form-data",
        )


def status(client: Any, cid: str, auth: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/api/conversations/{cid}", headers=auth)
    assert r.status_code == 200
    body: dict[str, Any] = r.get_json()
    return body


def event_types(cid: str) -> list[str]:
    with session_scope() as s:
        return list(
            s.scalars(select(Event.type).where(Event.conversation_id == cid).order_by(Event.id))
        )


def test_out_of_order_uploads_with_repeats_are_transcribed(
    client: Any, workers: Any, two_voices: Meeting
) -> None:
    workers()
    cid, auth = create(client)
    order = list(range(len(two_voices.chunks)))
    random.Random(7).shuffle(order)
    for index in order:
        assert upload(client, cid, auth, index, two_voices.chunks[index]).status_code == 202
    again = upload(client, cid, auth, order[0], two_voices.chunks[order[0]])
    assert again.status_code == 200 and again.get_json()["created"] is False
    r = client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    assert r.status_code == 202
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202

    view = wait_for(
        lambda: (s := status(client, cid, auth))["is_all_chunks_transcribed"] and s, timeout=150
    )
    assert view["status"] == "transcribed"
    assert view["chunks"] == {"total": len(order), "transcribed": len(order)}
    body = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    segments = body["segments"]
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    assert segments[-1]["end"] > 60  # absolute times across chunks
    hypothesis = " ".join(s["text"] for s in segments)
    assert wer(two_voices.script.text, hypothesis) <= 0.15
    types = event_types(cid)
    assert types.count("transcription_complete") == 1
    assert types.count("chunk_transcribed") == len(order)
    assert types.count("chunk_received") == len(order)
    txt = client.get(f"/api/conversations/{cid}/transcript?format=txt", headers=auth)
    assert txt.status_code == 200 and txt.mimetype == "text/plain"
    assert len(txt.get_data(as_text=True).strip().splitlines()) == len(segments)
    srt = client.get(f"/api/conversations/{cid}/transcript?format=srt", headers=auth)
    assert "-->" in srt.get_data(as_text=True)


def test_flag_never_true_while_a_chunk_is_in_flight(
    client: Any, workers: Any, env: Any, two_voices: Meeting
) -> None:
    env(transcriber="simulated", sim_latency_seconds=1.5, language_provider="simulated")
    workers(threads=2)
    cid, auth = create(client)
    for index, path in enumerate(two_voices.chunks):
        upload(client, cid, auth, index, path)
    client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    seen_in_flight = 0
    while True:
        with session_scope() as s:
            conv = s.get(Conversation, cid)
            assert conv is not None
            open_chunks = s.scalar(
                select(func.count())
                .select_from(Chunk)
                .where(Chunk.conversation_id == cid, Chunk.status.in_(("queued", "processing")))
            )
            flag = conv.is_all_chunks_transcribed
        if open_chunks:
            seen_in_flight += 1
            assert not flag, "flag set while chunks were still in flight"
        elif flag:
            break
    assert seen_in_flight > 3


def test_sixty_four_concurrent_barrier_calls_have_one_winner(client: Any) -> None:
    from mina.dispatch import NullDispatcher
    from mina.pipeline import barrier

    cid, _ = create(client)
    with session_scope() as s:
        s.add_all(chunk_rows(cid, ["transcribed"] * 3, duration=1.0, segments=[]))
        conv = s.get(Conversation, cid)
        assert conv is not None
        conv.is_finished, conv.expected_chunks, conv.status = True, 3, "finished"
    results: list[bool] = []
    start = threading.Barrier(64)

    def call() -> None:
        start.wait()
        results.append(barrier.settle(cid, NullDispatcher()))

    threads = [threading.Thread(target=call) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and len(results) == 64
    assert event_types(cid).count("transcription_complete") == 1


def test_transient_failures_recover_and_clear_the_error(
    client: Any, workers: Any, env: Any, two_voices: Meeting
) -> None:
    env(transcriber="simulated", sim_latency_seconds=0.05, sim_transient_first=2)
    workers()
    cid, auth = create(client)
    upload(client, cid, auth, 0, two_voices.chunks[0])
    client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    view = wait_for(lambda: (s := status(client, cid, auth))["is_all_chunks_transcribed"] and s)
    assert view["chunks"]["transcribed"] == 1
    with session_scope() as s:
        chunk = s.scalars(select(Chunk).where(Chunk.conversation_id == cid)).one()
        assert chunk.status == "transcribed"
        assert chunk.error is None and chunk.error_kind is None
        assert chunk.attempts == 3


def test_permanent_failure_is_persisted_and_the_conversation_completes(
    client: Any, workers: Any, env: Any, two_voices: Meeting, app: Any
) -> None:
    env(transcriber="simulated", sim_latency_seconds=0.05)
    cid, auth = create(client)
    for index, path in enumerate(two_voices.chunks[:2]):
        assert upload(client, cid, auth, index, path).status_code == 202
    with session_scope() as s:
        lost = s.scalars(select(Chunk).where(Chunk.conversation_id == cid, Chunk.index == 1)).one()
        key = lost.storage_key
    app.extensions["mina"].storage.delete(key)  # the blob vanished before any worker ran
    workers()
    client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    view = wait_for(lambda: (s := status(client, cid, auth))["is_all_chunks_transcribed"] and s)
    assert view["status"] == "transcribed"
    assert view["chunks"]["failed"] == 1 and view["chunks"]["transcribed"] == 1
    [failed] = view["failed_chunks"]
    assert failed["index"] == 1 and "missing" in failed["error"]
    assert failed["error_kind"] == "permanent" and failed["attempts"] == 1
    assert "chunk_failed" in event_types(cid)


def test_every_chunk_failing_marks_transcription_failed(
    client: Any, workers: Any, env: Any, two_voices: Meeting
) -> None:
    env(transcriber="simulated", sim_latency_seconds=0.01, sim_permanent_rate=1.0)
    workers()
    cid, auth = create(client)
    upload(client, cid, auth, 0, two_voices.chunks[0])
    client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    view = wait_for(lambda: (s := status(client, cid, auth))["is_all_chunks_transcribed"] and s)
    assert view["status"] == "transcription_failed"
    assert view["processing_status"] == "failed"
    assert view["failed_chunks"][0]["error"] == "simulated permanent failure"
    assert "post_transcription_failed" in event_types(cid)


def _queued_chunks(cid: str, n: int) -> list[str]:
    with session_scope() as s:
        rows = chunk_rows(cid, ["queued"] * n)
        s.add_all(rows)
        s.flush()
        return [c.id for c in rows]


def test_a_chunk_ended_before_finish_leaves_the_barrier_to_the_finish(client: Any) -> None:
    """`complete`/`fail` tell the worker whether the barrier can be due (the conversation was
    finished, read under its lock); a chunk of an open conversation skips it, and the finish
    that comes later passes it."""
    from mina.dispatch import NullDispatcher
    from mina.pipeline import barrier, chunk_state
    from mina.pipeline.finish import finish_conversation
    from mina.settings import get_settings

    settings = get_settings()
    cid, _ = create(client)
    first, second = _queued_chunks(cid, 2)
    claim = chunk_state.claim(first, settings)
    assert claim is not None and claim.attempt == 1 and claim.conversation_id == cid
    assert chunk_state.claim(first, settings) is None  # held: the conditional UPDATE says so
    ended = chunk_state.complete(claim, [], 30.0)
    assert ended is not None and ended.barrier_due is False
    finish_conversation(cid, None, NullDispatcher())  # the second chunk is still queued
    claim = chunk_state.claim(second, settings)
    assert claim is not None
    ended = chunk_state.fail(claim, "unreadable", chunk_state.PERMANENT)
    assert ended is not None and ended.barrier_due is True
    assert chunk_state.fail(claim, "again", chunk_state.PERMANENT) is None  # the claim is spent
    assert barrier.settle(cid, NullDispatcher(), seams_made=True)
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None and conv.is_all_chunks_transcribed and conv.progress == 70
    claim_again = chunk_state.Claim(second, cid, 1, 1, "k1")
    assert chunk_state.complete(claim_again, [], 1.0) is None  # terminal: nothing changes


def test_only_the_chunk_that_ends_the_transcription_finds_the_barrier_due(client: Any) -> None:
    """After the finish, `complete`/`fail` tell the worker to run the barrier only when every
    expected chunk is terminal (read under the conversation's lock): not while another chunk is
    in flight or an announced one has not come."""
    from mina.dispatch import NullDispatcher
    from mina.pipeline import chunk_state
    from mina.pipeline.finish import finish_conversation
    from mina.settings import get_settings

    settings = get_settings()
    cid, _ = create(client)
    claims = [chunk_state.claim(c, settings) for c in _queued_chunks(cid, 3)]
    assert all(claims)
    finish_conversation(cid, 4, NullDispatcher())  # a fourth chunk is announced
    due = []
    for claim in claims[:2]:
        ended = chunk_state.complete(claim, [], 30.0)  # type: ignore[arg-type]
        assert ended is not None
        due.append(ended.barrier_due)
    with session_scope() as s:  # the fourth chunk arrives
        (late,) = (r for r in chunk_rows(cid, ["queued"] * 4) if r.index == 3)
        s.add(late)
        s.flush()
        late_id = late.id
    ended = chunk_state.fail(claims[2], "unreadable", chunk_state.PERMANENT)  # type: ignore[arg-type]
    assert ended is not None
    due.append(ended.barrier_due)  # the fourth is still queued
    last = chunk_state.claim(late_id, settings)
    assert last is not None
    ended = chunk_state.complete(last, [], 30.0)
    assert ended is not None
    due.append(ended.barrier_due)
    assert due == [False, False, False, True]


def test_progress_counts_ended_chunks_over_the_expected_ones(client: Any) -> None:
    """`complete`/`fail` set transcription's share of `progress` (0-70) in the UPDATE itself:
    70 x ended // max(chunks, expected), whole percents rounded down."""
    from mina.dispatch import NullDispatcher
    from mina.pipeline import chunk_state
    from mina.pipeline.finish import finish_conversation
    from mina.settings import get_settings

    def progress() -> int:
        with session_scope() as s:
            conv = s.get(Conversation, cid)
            assert conv is not None
            return conv.progress

    settings = get_settings()
    cid, _ = create(client)
    chunks = _queued_chunks(cid, 3)
    seen = [progress()]
    claims = [chunk_state.claim(c, settings) for c in chunks]
    assert all(claims)
    chunk_state.complete(claims[0], [], 30.0)  # type: ignore[arg-type]
    seen.append(progress())  # 1 of 3 rows
    finish_conversation(cid, 4, NullDispatcher())  # one more expected than uploaded
    chunk_state.complete(claims[1], [], 30.0)  # type: ignore[arg-type]
    seen.append(progress())  # 2 of 4 expected
    chunk_state.fail(claims[2], "unreadable", chunk_state.PERMANENT)  # type: ignore[arg-type]
    seen.append(progress())  # 3 of 4
    assert seen == [0, 23, 35, 52]


def test_a_database_out_of_reach_at_the_claim_is_retried_not_dropped(
    clean_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor retries only `TransientError`: a claim that cannot reach the database must
    raise one, or the message is dropped and the chunk waits for the scheduler."""
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from mina.errors import TransientError
    from mina.pipeline import chunk_state, transcribe
    from mina.settings import get_settings

    def down(*_: Any) -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(chunk_state, "claim_in", down)
    with pytest.raises(TransientError, match="database out of reach"):
        transcribe.run_chunk("no-such-chunk", SimpleNamespace(settings=get_settings()))  # type: ignore[arg-type]


def _complete_while_finishing(client: Any) -> str:
    """One race of the last chunk's `complete` against the conversation's finish; returns the
    conversation's id once both sides are done."""
    from mina.dispatch import NullDispatcher
    from mina.pipeline import barrier, chunk_state
    from mina.pipeline.finish import finish_conversation
    from mina.settings import get_settings

    cid, _ = create(client)
    (chunk_id,) = _queued_chunks(cid, 1)
    claim = chunk_state.claim(chunk_id, get_settings())
    assert claim is not None
    start = threading.Barrier(2)
    wins: list[bool] = []

    def worker() -> None:
        start.wait()
        ended = chunk_state.complete(claim, [], 30.0)
        assert ended is not None
        if ended.barrier_due:  # what transcribe._after_terminal does
            wins.append(barrier.settle(cid, NullDispatcher(), seams_made=True))

    def finisher() -> None:
        start.wait()
        finish_conversation(cid, None, NullDispatcher())  # settles when nothing is pending
        wins.append(barrier.settle(cid, NullDispatcher()))  # else the finish group's callback

    threads = [threading.Thread(target=worker), threading.Thread(target=finisher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) <= 1, wins  # (finish_conversation may have passed it itself)
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None and conv.is_all_chunks_transcribed, "barrier stranded"
    return cid


def test_a_chunk_ending_while_the_conversation_finishes_never_strands_the_barrier(
    client: Any,
) -> None:
    """The race the skipped barrier must survive: the last chunk completes while finish
    commits. The worker settles only when its `complete` saw the conversation finished; the
    finish settles after its commit. Whichever order the two transactions take, the barrier
    passes, once."""
    for _ in range(12):
        cid = _complete_while_finishing(client)
        assert event_types(cid).count("transcription_complete") == 1


def test_duplicate_and_concurrent_messages_transcribe_once(
    client: Any, workers: Any, env: Any, two_voices: Meeting
) -> None:
    env(transcriber="simulated", sim_latency_seconds=0.5)
    cid, auth = create(client)
    upload(client, cid, auth, 0, two_voices.chunks[0])
    with session_scope() as s:
        chunk_id = s.scalars(select(Chunk.id).where(Chunk.conversation_id == cid)).one()
    from workers.dispatch import DramatiqDispatcher

    DramatiqDispatcher().transcribe([chunk_id] * 6)  # six more copies of the message
    workers(threads=4)
    wait_for(lambda: "chunk_transcribed" in event_types(cid))
    drain("cpu")  # every duplicate was fetched and found nothing to claim
    assert event_types(cid).count("chunk_transcribed") == 1
    with session_scope() as s:
        chunk = s.get(Chunk, chunk_id)
        assert chunk is not None and chunk.attempts == 1

"""Operator API and result endpoints: real HTTP (Flask test client), real workers, real audio.

Failures are made the way they happen: a task that fails in the worker (`sim_task_fail`, read
by the worker process, so a retry that succeeds needs workers restarted without it) and a chunk
whose blob vanished from storage (and is put back before the operator retries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mina.db import session_scope
from mina.models import Chunk, Conversation, Event
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.stack import OPERATOR, bearer, wait_for

pytestmark = pytest.mark.embedded

FAST = {"transcriber": "simulated", "sim_latency_seconds": 0.2, "language_provider": "simulated"}


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("talk"), minutes=0.5, chunk_seconds=10)


def create(client: Any, title: str = "sync") -> tuple[str, dict[str, str]]:
    r = client.post("/api/conversations", json={"title": title})
    assert r.status_code == 201
    return r.get_json()["id"], bearer(r.get_json()["token"])


def upload(client: Any, cid: str, auth: dict[str, str], index: int, path: Path) -> None:
    with path.open("rb") as fh:
        r = client.post(
            f"/api/conversations/{cid}/chunks",
            data={"index": str(index), "file": (fh, path.name)},
            headers=auth,
            content_type="multipart/form-data",
        )
    assert r.status_code == 202, r.get_json()


def record(client: Any, m: Meeting, title: str = "sync") -> tuple[str, dict[str, str]]:
    cid, auth = create(client, title)
    for index, path in enumerate(m.chunks):
        upload(client, cid, auth, index, path)
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    return cid, auth


def detail(client: Any, cid: str) -> dict[str, Any]:
    r = client.get(f"/api/operator/conversations/{cid}", headers=OPERATOR)
    assert r.status_code == 200, r.get_json()
    body: dict[str, Any] = r.get_json()
    return body


def settled(client: Any, cid: str, reveals: int = 1) -> dict[str, Any]:
    """Wait until the conversation revealed `reveals` times and nothing runs."""

    def done() -> dict[str, Any] | None:
        conv = detail(client, cid)["conversation"]
        ok = conv["reveal_count"] >= reveals and conv["processing_status"] in (
            "ready",
            "partial",
            "failed",
        )
        return conv if ok else None

    found: dict[str, Any] = wait_for(done, timeout=180, interval=0.3)
    return found


def listed(client: Any, query: str = "") -> dict[str, Any]:
    r = client.get(f"/api/operator/conversations{query}", headers=OPERATOR)
    assert r.status_code == 200, r.get_json()
    body: dict[str, Any] = r.get_json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [row["id"] for row in body["conversations"]]


def ledger_types(cid: str) -> list[str]:
    with session_scope() as s:
        return list(
            s.scalars(select(Event.type).where(Event.conversation_id == cid).order_by(Event.id))
        )


def assert_error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.get_json()["error"]["code"] == code


def test_operator_routes_need_the_operator_token(client: Any) -> None:
    cid, auth = create(client)
    routes = [
        ("get", "/api/operator/conversations"),
        ("get", f"/api/operator/conversations/{cid}"),
        ("get", "/api/operator/stats"),
        ("post", f"/api/operator/conversations/{cid}/retry"),
        ("post", f"/api/operator/conversations/{cid}/finish"),
    ]
    for method, path in routes:
        assert_error(getattr(client, method)(path, json={}), 401, "unauthorized")
        assert_error(getattr(client, method)(path, json={}, headers=auth), 403, "forbidden")
    assert client.get(f"/api/operator/stats?token={OPERATOR_TOKEN}").status_code == 200
    with client.session_transaction() as session:  # the dashboard's login cookie
        session["operator_token"] = OPERATOR_TOKEN
    assert client.get("/api/operator/conversations").status_code == 200
    assert client.get(f"/api/conversations/{cid}/summary").status_code == 409  # not 401


def test_list_filter_page_detail_stats_and_results(
    client: Any, workers: Any, env: Any, talk: Meeting
) -> None:
    env(**FAST, sim_task_fail="summary")
    workers()
    done, auth = record(client, talk, "partial one")
    recording, rec_auth = create(client, "still recording")
    upload(client, recording, rec_auth, 0, talk.chunks[0])
    empty, _ = create(client, "never used")
    conv = settled(client, done)
    assert conv["processing_status"] == "partial" and conv["failed_tasks"] == ["summary"]
    n = len(talk.chunks)

    everything = listed(client)
    assert ids(everything) == [empty, recording, done] and everything["total"] == 3
    assert ids(listed(client, "?status=transcribed")) == [done]
    assert ids(listed(client, "?processing_status=partial,ready")) == [done]
    assert ids(listed(client, "?failed=true")) == [done]
    assert set(ids(listed(client, "?status=recording"))) == {recording, empty}
    assert_error(
        client.get("/api/operator/conversations?status=bogus", headers=OPERATOR),
        400,
        "invalid_body",
    )
    assert_error(
        client.get("/api/operator/conversations?cursor=zz", headers=OPERATOR), 400, "bad_cursor"
    )
    # stuck: not terminal, something to do, idle past the threshold (the empty one has nothing)
    wait_for(lambda: ids(listed(client, "?stuck=true&stuck_seconds=1")) == [recording])
    assert ids(listed(client, "?stuck=true")) == []  # default threshold: 10 minutes

    first = listed(client, "?limit=2")
    assert ids(first) == [empty, recording] and first["next_cursor"]
    second = listed(client, f"?limit=2&cursor={first['next_cursor']}")
    assert ids(second) == [done] and second["next_cursor"] is None
    assert ids(listed(client, "?limit=2&offset=2")) == [done]

    row = everything["conversations"][2]
    assert row["chunks"] == {
        "total": n,
        "queued": 0,
        "processing": 0,
        "transcribed": n,
        "failed": 0,
    }
    assert row["progress"] == 100 and row["reveal_count"] == 1 and row["stuck"] is False
    assert row["age_seconds"] >= row["idle_seconds"] >= 0

    d = detail(client, done)
    assert [c["index"] for c in d["chunks"]] == list(range(n))
    assert all(c["status"] == "transcribed" and c["attempts"] == 1 for c in d["chunks"])
    assert all(c["transcribe_seconds"] is not None for c in d["chunks"])
    tasks = {t["name"]: t for t in d["tasks"]}
    assert tasks["summary"]["status"] == "failed" and "simulated" in tasks["summary"]["error"]
    assert all(
        t["status"] == "done" and t["duration_ms"] is not None
        for name, t in tasks.items()
        if name != "summary"
    )
    types = [e["type"] for e in d["events"]]
    assert types == ledger_types(done)
    chunk_event = next(e for e in d["events"] if e["type"] == "chunk_transcribed")
    assert (
        chunk_event["omitted"] == ["segments", "text"] and "segments" not in chunk_event["payload"]
    )
    assert d["results"] == {
        "transcript": True,
        "refinement": True,
        "analytics": True,
        "tasks": True,
        "summary": False,
        "audio": True,
    }
    assert_error(client.get("/api/operator/conversations/nope", headers=OPERATOR), 404, "not_found")

    stats = client.get("/api/operator/stats", headers=OPERATOR).get_json()
    assert stats["conversations"]["total"] == 3
    assert stats["conversations"]["status"] == {"transcribed": 1, "recording": 2}
    assert stats["conversations"]["processing_status"] == {"partial": 1, "pending": 2}
    assert stats["tasks"] == {"done": 5, "failed": 1}
    assert set(stats["queues"]) == {"cpu", "network"}
    assert all(
        isinstance(v, int)
        for q in stats["queues"].values()
        for k, v in q.items()
        if k != "in_progress"
    )
    chunk_time = stats["timings"]["chunk_transcription_seconds"]
    assert chunk_time["count"] >= n and 0 < chunk_time["p50"] <= chunk_time["p95"]
    reveal_time = stats["timings"]["finish_to_reveal_seconds"]
    assert reveal_time["count"] == 1 and reveal_time["p50"] == reveal_time["p95"] > 0

    analytics = client.get(f"/api/conversations/{done}/analytics", headers=auth)
    assert analytics.status_code == 200 and analytics.get_json()["speakers"]
    assert "items" in client.get(f"/api/conversations/{done}/tasks", headers=auth).get_json()
    assert_error(client.get(f"/api/conversations/{done}/summary", headers=auth), 409, "not_ready")
    audio = client.get(f"/api/conversations/{done}/audio", headers=auth)
    assert audio.status_code == 200 and audio.mimetype == "audio/ogg"
    assert audio.data[:4] == b"OggS"
    part = client.get(f"/api/conversations/{done}/audio", headers={**auth, "Range": "bytes=0-9"})
    assert part.status_code == 206 and part.data == audio.data[:10]
    assert_error(
        client.get(f"/api/conversations/{recording}/audio", headers=rec_auth), 409, "not_ready"
    )
    assert_error(
        client.get(f"/api/conversations/{done}/analytics", headers=rec_auth), 403, "forbidden"
    )


def test_retrying_a_failed_task_upgrades_partial_to_ready(
    client: Any, workers: Any, env: Any, talk: Meeting
) -> None:
    env(**FAST, sim_task_fail="summary")
    failing = workers()
    cid, auth = record(client, talk)
    assert settled(client, cid)["processing_status"] == "partial"
    assert_error(client.get(f"/api/conversations/{cid}/summary", headers=auth), 409, "not_ready")

    failing.stop()
    env(**FAST, sim_task_fail="")  # it was the workers' setting: new workers without it
    workers()
    r = client.post(
        f"/api/operator/conversations/{cid}/retry", json={"what": "tasks"}, headers=OPERATOR
    )
    assert r.status_code == 202, r.get_json()
    assert r.get_json() == {
        "id": cid,
        "chunks": [],
        "tasks": ["summary"],
        "reopened": False,
        "status": "transcribed",
        "processing_status": "running",
    }
    conv = settled(client, cid, reveals=2)
    assert conv["processing_status"] == "ready" and conv["failed_tasks"] == []
    with session_scope() as s:
        reveals = s.scalars(
            select(Event.payload)
            .where(Event.conversation_id == cid, Event.type == "post_transcription_reveal")
            .order_by(Event.id)
        ).all()
    assert [p["status"] for p in reveals] == ["partial", "ready"]
    assert reveals[0]["failed_tasks"] == ["summary"] and reveals[1]["failed_tasks"] == []
    summary = client.get(f"/api/conversations/{cid}/summary", headers=auth)
    assert summary.status_code == 200 and summary.get_json()["title"]
    again = client.post(f"/api/operator/conversations/{cid}/retry", json={}, headers=OPERATOR)
    assert_error(again, 409, "nothing_to_retry")


def test_retrying_a_failed_chunk_reopens_and_reprocesses(
    client: Any, app: Any, workers: Any, env: Any, talk: Meeting
) -> None:
    env(**FAST)
    cid, auth = create(client)
    for index, path in enumerate(talk.chunks):
        upload(client, cid, auth, index, path)
    storage = app.extensions["mina"].storage
    with session_scope() as s:
        key = s.scalars(
            select(Chunk.storage_key).where(Chunk.conversation_id == cid, Chunk.index == 1)
        ).one()
    blob = storage.get_bytes(key)
    storage.delete(key)  # lost before any worker ran
    workers()
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    first = settled(client, cid)
    assert first["status"] == "transcribed" and first["chunks"]["failed"] == 1
    before = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    assert 1 not in {s["chunk_index"] for s in before["segments"]}

    import io

    storage.put(key, io.BytesIO(blob))  # the operator restored it
    r = client.post(
        f"/api/operator/conversations/{cid}/retry", json={"what": "chunks"}, headers=OPERATOR
    )
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["chunks"] == [1] and body["tasks"] == [] and body["reopened"] is True
    assert body["status"] == "finished" and body["processing_status"] == "pending"

    second = settled(client, cid, reveals=2)
    assert second["status"] == "transcribed" and second["chunks"]["failed"] == 0
    [chunk] = [c for c in detail(client, cid)["chunks"] if c["index"] == 1]
    assert chunk["status"] == "transcribed" and chunk["attempts"] == 1 and chunk["error"] is None
    types = ledger_types(cid)
    assert types.count("transcription_complete") == 2
    assert types.count("post_transcription_reveal") == 2
    assert types.count("post_transcription_started") == 2
    with session_scope() as s:
        retried = s.scalars(
            select(Event.payload).where(
                Event.conversation_id == cid, Event.type == "chunks_retried"
            )
        ).one()
    assert retried["reopened"] is True
    [info] = retried["chunks"]
    assert info["index"] == 1 and "missing" in info["previous_error"]
    assert info["previous_attempts"] == 1
    after = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    assert 1 in {s["chunk_index"] for s in after["segments"]}


def _stored(status: str, processing: str, transcribed: bool) -> str:
    """A conversation with one transcribed and one failed chunk, in the given state."""
    with session_scope() as s:
        conv = Conversation(
            title="made",
            token_hash="x" * 64,
            status=status,
            processing_status=processing,
            is_finished=True,
            expected_chunks=2,
            is_all_chunks_transcribed=transcribed,
        )
        s.add(conv)
        s.flush()
        for i, st in enumerate(("transcribed", "failed")):
            s.add(
                Chunk(
                    conversation_id=conv.id,
                    index=i,
                    sha256=f"{i:064d}",
                    size=1,
                    mime="audio/ogg",
                    storage_key=f"k{i}",
                    status=st,
                    attempts=3,
                    error="boom" if st == "failed" else None,
                    duration=1.0,
                    segments=[],
                )
            )
        return conv.id


def test_chunk_retry_is_refused_while_post_processing_runs(client: Any) -> None:
    cid = _stored("transcribed", "running", transcribed=True)
    for what in ("chunks", "all"):
        r = client.post(
            f"/api/operator/conversations/{cid}/retry", json={"what": what}, headers=OPERATOR
        )
        assert_error(r, 409, "running")
    assert_error(
        client.post(
            f"/api/operator/conversations/{cid}/retry", json={"what": "tasks"}, headers=OPERATOR
        ),
        409,
        "running",
    )
    with session_scope() as s:
        failed = s.scalars(
            select(Chunk).where(Chunk.conversation_id == cid, Chunk.status == "failed")
        ).one()
        assert failed.attempts == 3 and failed.error == "boom"
    assert "chunks_retried" not in ledger_types(cid)
    bad = client.post(
        f"/api/operator/conversations/{cid}/retry", json={"what": "everything"}, headers=OPERATOR
    )
    assert_error(bad, 400, "invalid_body")


def test_chunk_retry_before_transcription_only_requeues(client: Any) -> None:
    cid = _stored("finished", "pending", transcribed=False)
    r = client.post(
        f"/api/operator/conversations/{cid}/retry", json={"what": "all"}, headers=OPERATOR
    )
    assert r.status_code == 202
    assert r.get_json()["chunks"] == [1] and r.get_json()["reopened"] is False
    with session_scope() as s:
        chunk = s.scalars(select(Chunk).where(Chunk.conversation_id == cid, Chunk.index == 1)).one()
        assert chunk.status == "queued" and chunk.attempts == 0
        assert chunk.error == "boom"  # the last error stays visible until it succeeds
        conv = s.get(Conversation, cid)
        assert conv is not None and conv.status == "finished" and conv.progress == 35


def test_operator_force_finish_runs_the_pipeline(
    client: Any, workers: Any, env: Any, talk: Meeting
) -> None:
    env(**FAST)
    workers()
    cid, auth = create(client)
    for index, path in enumerate(talk.chunks[:2]):
        upload(client, cid, auth, index, path)
    path = f"/api/operator/conversations/{cid}/finish"
    r = client.post(path, json={}, headers=OPERATOR)
    assert r.status_code == 202
    assert r.get_json() == {
        "id": cid,
        "status": "finished",
        "is_finished": True,
        "expected_chunks": 2,
        "changed": True,
    }
    assert client.post(path, json={}, headers=OPERATOR).get_json()["changed"] is False
    assert_error(
        client.post(path, json={"expected_chunks": 5}, headers=OPERATOR), 409, "already_finished"
    )
    assert settled(client, cid)["processing_status"] == "ready"
    assert ledger_types(cid).count("conversation_finished") == 1


def test_openapi_documents_the_operator_and_realtime_routes(client: Any) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in (
        "/api/operator/conversations",
        "/api/operator/conversations/{conversation_id}",
        "/api/operator/stats",
        "/api/operator/conversations/{conversation_id}/retry",
        "/api/operator/conversations/{conversation_id}/finish",
        "/api/conversations/{conversation_id}/events/stream",
        "/api/conversations/{conversation_id}/analytics",
        "/api/conversations/{conversation_id}/tasks",
        "/api/conversations/{conversation_id}/summary",
        "/api/conversations/{conversation_id}/audio",
    ):
        assert path in paths, path
    stream = paths["/api/conversations/{conversation_id}/events/stream"]["get"]
    assert {p["name"] for p in stream["parameters"]} >= {"after", "token"}
    retry = paths["/api/operator/conversations/{conversation_id}/retry"]["post"]
    assert "202" in retry["responses"] and "409" in retry["responses"]

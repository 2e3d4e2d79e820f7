"""Participant API: auth, request shapes, and every bad upload refused with nothing left behind."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mina.db import session_scope
from mina.models import Chunk
from tests.fixtures.stack import OPERATOR, bearer, wait_for

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def ogg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("audio") / "tone.ogg"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
            "-c:a",
            "libopus",
            "-b:a",
            "24k",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


def create(client: Any) -> tuple[str, dict[str, str]]:
    body = client.post("/api/conversations", json={}).get_json()
    return body["id"], bearer(body["token"])


def post_chunk(
    client: Any, cid: str, auth: dict[str, str], index: Any, data: bytes, name: str = "c.ogg"
) -> Any:
    return client.post(
        f"/api/conversations/{cid}/chunks",
        data={"index": str(index), "file": (io.BytesIO(data), name)},
        headers=auth,
        content_type="multipart/form-data",
    )


def rows(cid: str) -> int:
    with session_scope() as s:
        return int(
            s.scalar(select(func.count()).select_from(Chunk).where(Chunk.conversation_id == cid))
            or 0
        )


def blobs(app: Any, cid: str) -> list[str]:
    return [b.key for b in app.extensions["mina"].storage.list(f"conversations/{cid}/")]


def assert_error(r: Any, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code


def test_create_returns_token_once_and_link(client: Any) -> None:
    r = client.post("/api/conversations", json={"title": "Planning"})
    assert r.status_code == 201
    body = r.get_json()
    assert body["title"] == "Planning" and len(body["token"]) > 20
    assert body["participant_url"].endswith(f"/c/{body['id']}?token={body['token']}")
    status = client.get(f"/api/conversations/{body['id']}", headers=bearer(body["token"]))
    assert status.status_code == 200 and "token" not in status.get_json()


def test_auth_none_401_other_conversation_403_unknown_404_operator_ok(client: Any) -> None:
    cid, auth = create(client)
    _, other = create(client)
    assert_error(client.get(f"/api/conversations/{cid}"), 401, "unauthorized")
    assert_error(client.get(f"/api/conversations/{cid}", headers=other), 403, "forbidden")
    assert_error(client.get("/api/conversations/nope", headers=auth), 404, "not_found")
    assert client.get(f"/api/conversations/{cid}", headers=OPERATOR).status_code == 200


def test_malformed_json_and_unknown_fields_are_400(client: Any) -> None:
    cid, auth = create(client)
    r = client.post(
        f"/api/conversations/{cid}/finish",
        data="{not json",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_error(r, 400)
    assert_error(client.post("/api/conversations", json={"title": 5, "x": 1}), 400)
    r = client.post(f"/api/conversations/{cid}/finish", json={"expected_chunks": -1}, headers=auth)
    assert_error(r, 400)


@pytest.mark.parametrize(
    ("index", "data", "name", "status", "code"),
    [
        ("x", None, "c.ogg", 400, "bad_index"),
        (-1, None, "c.ogg", 400, "bad_index"),
        (0, b"hello, this is a text file\n" * 20, "notes.webm", 415, "unsupported_media"),
        (0, b"", "empty.ogg", 415, "unsupported_media"),
        (0, "truncated", "cut.ogg", 415, "unsupported_media"),
    ],
)
def test_bad_uploads_leave_no_row_and_no_blob(
    client: Any, app: Any, ogg: bytes, index: Any, data: Any, name: str, status: int, code: str
) -> None:
    cid, auth = create(client)
    payload = ogg if data is None else ogg[: len(ogg) // 2] if data == "truncated" else data
    assert_error(post_chunk(client, cid, auth, index, payload, name), status, code)
    assert rows(cid) == 0 and blobs(app, cid) == []


def mp3_in_wav_with_noise() -> bytes:
    """A WAV whose container is whole but whose MPEG audio is noise: reading the packets
    finds nothing wrong, decoding them fails ("Header missing")."""
    data = random.Random(7).randbytes(64_000)
    fmt = struct.pack("<HHIIHH", 0x55, 1, 16_000, 4_000, 1, 0)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def app_with(env: Any, **settings: Any) -> Any:
    from api import create_app
    from mina.settings import get_settings

    env(**settings)
    return create_app(get_settings()).test_client()


@pytest.mark.parametrize("check", ["request", "worker"])
def test_container_damage_is_415_in_both_upload_checks(
    app: Any, env: Any, ogg: bytes, check: str
) -> None:
    client = app_with(env, upload_decode_check=check)
    cid, auth = create(client)
    cut = post_chunk(client, cid, auth, 0, ogg[: len(ogg) // 2], "cut.ogg")
    assert_error(cut, 415, "unsupported_media")
    text = post_chunk(client, cid, auth, 0, b"hello, this is a text file\n" * 20, "notes.webm")
    assert_error(text, 415, "unsupported_media")
    assert rows(cid) == 0 and blobs(app, cid) == []


def test_damaged_audio_is_415_when_the_request_decodes_it(app: Any, env: Any) -> None:
    client = app_with(env, upload_decode_check="request")  # still available, not the default
    cid, auth = create(client)
    r = post_chunk(client, cid, auth, 0, mp3_in_wav_with_noise(), "c.wav")
    assert_error(r, 415, "unsupported_media")
    assert "Header missing" in r.get_json()["error"]["message"]
    assert rows(cid) == 0 and blobs(app, cid) == []


def test_damaged_audio_fails_its_chunk_visibly_when_the_worker_decodes_it(
    app: Any, env: Any, workers: Any
) -> None:
    # The default check: what a re-send can fix (truncation) is 415 in the request, damage
    # inside the packets is the worker's, and the participant sees it on the chunk.
    client = app_with(env, transcriber="simulated", sim_latency_seconds=0)
    assert client.application.config["MINA_SETTINGS"].upload_decode_check == "worker"
    workers(threads=2)
    cid, auth = create(client)
    r = post_chunk(client, cid, auth, 0, mp3_in_wav_with_noise(), "c.wav")
    assert r.status_code == 202, r.get_json()  # acknowledged on its container alone
    chunk_id = r.get_json()["id"]

    def failed() -> dict[str, Any] | None:
        view = client.get(f"/api/conversations/{cid}", headers=auth).get_json()
        return view if view["chunks"].get("failed") == 1 else None

    view = wait_for(failed, timeout=60)
    (error,) = view["failed_chunks"]
    assert error["index"] == 0 and error["error_kind"] == "permanent"
    assert "Header missing" in error["error"]
    with session_scope() as s:
        row = s.get(Chunk, chunk_id)
        assert row is not None and row.status == "failed"
    assert len(blobs(app, cid)) == 1  # the original is kept for the operator


def test_too_large_is_413_and_stores_nothing(client: Any, app: Any, env: Any, ogg: bytes) -> None:
    env(max_chunk_bytes=len(ogg) - 1)
    from api import create_app
    from mina.settings import get_settings

    small = create_app(get_settings()).test_client()
    cid, auth = create(small)
    assert_error(post_chunk(small, cid, auth, 0, ogg), 413, "too_large")
    assert rows(cid) == 0 and blobs(app, cid) == []


def test_same_bytes_200_other_bytes_409_after_finish_409(
    client: Any, app: Any, ogg: bytes, tmp_path: Path
) -> None:
    cid, auth = create(client)
    first = post_chunk(client, cid, auth, 0, ogg)
    assert first.status_code == 202
    again = post_chunk(client, cid, auth, 0, ogg)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    other = tmp_path / "other.ogg"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=2",
            "-c:a",
            "libopus",
            str(other),
        ],
        check=True,
    )
    assert_error(post_chunk(client, cid, auth, 0, other.read_bytes()), 409, "index_taken")
    assert rows(cid) == 1 and len(blobs(app, cid)) == 1
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    assert_error(post_chunk(client, cid, auth, 1, other.read_bytes()), 409, "finished")
    assert rows(cid) == 1 and len(blobs(app, cid)) == 1


def test_late_chunk_announced_by_finish_is_accepted(client: Any, ogg: bytes) -> None:
    cid, auth = create(client)
    assert post_chunk(client, cid, auth, 0, ogg).status_code == 202
    r = client.post(f"/api/conversations/{cid}/finish", json={"expected_chunks": 2}, headers=auth)
    assert r.status_code == 202 and r.get_json()["expected_chunks"] == 2
    assert post_chunk(client, cid, auth, 1, ogg[:-0] or ogg).status_code in (200, 202)
    view = client.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert view["chunks"]["total"] == 2 and view["is_finished"] is True


def test_finish_twice_changes_nothing(client: Any) -> None:
    cid, auth = create(client)
    one = client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    two = client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    assert one.status_code == two.status_code == 202
    for key in ("id", "is_finished", "expected_chunks"):
        assert one.get_json()[key] == two.get_json()[key]
    events = client.get(f"/api/conversations/{cid}/events", headers=auth).get_json()["events"]
    types = [e["type"] for e in events]
    assert types.count("conversation_finished") == 1
    assert types.count("transcription_complete") == 1  # no audio: transcription_failed, once
    three = client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    assert three.get_json()["status"] == "transcription_failed"
    again = client.get(f"/api/conversations/{cid}/events", headers=auth).get_json()["events"]
    assert len(again) == len(events)


@pytest.mark.services_only  # the embedded StubBroker cannot be unreachable
def test_broker_down_still_answers_202_and_keeps_the_chunk_queued(
    env: Any, ogg: bytes, app: Any
) -> None:
    from api import create_app
    from mina.settings import get_settings

    env(broker_url="redis://127.0.0.1:1/0")  # nothing listens there
    down = create_app(get_settings())
    down.extensions["mina"].dispatcher = _UnreachableDispatcher()
    client = down.test_client()
    cid, auth = create(client)
    r = post_chunk(client, cid, auth, 0, ogg)
    assert r.status_code == 202 and r.get_json()["status"] == "queued"
    assert rows(cid) == 1


class _UnreachableDispatcher:
    """The real Dramatiq dispatcher pointed at a Redis port where nothing listens."""

    def __init__(self) -> None:
        from dramatiq.brokers.redis import RedisBroker

        from workers.dispatch import DramatiqDispatcher

        self._broker = RedisBroker(url="redis://127.0.0.1:1/0")
        self._inner = DramatiqDispatcher()

    def transcribe(self, chunk_ids: list[str]) -> None:
        import redis

        from mina.errors import TransientError

        try:
            self._broker.client.ping()
        except redis.exceptions.ConnectionError as exc:
            raise TransientError(f"broker unreachable: {exc}") from exc


def test_openapi_document_lists_the_participant_api(client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert "/api/conversations" in paths
    assert "post" in paths["/api/conversations/{conversation_id}/chunks"]
    assert "/api/conversations/{conversation_id}/finish" in paths
    schemas = spec["components"]["schemas"]
    assert any("CreateConversation" in k for k in schemas)


def _tone(tmp_path: Path, hz: int) -> bytes:
    path = tmp_path / f"tone{hz}.ogg"
    tone = f"sine=frequency={hz}:duration=2"
    cmd = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", tone, "-c:a", "libopus", str(path)]
    subprocess.run(cmd, check=True)
    return path.read_bytes()


def _during_blob_write(app: Any, monkeypatch: pytest.MonkeyPatch, act: Any) -> dict[str, Any]:
    """Run `act` on another thread, to its end, while the first upload's blob is written (its
    transaction open: authorized and checked, the conversation not locked yet)."""
    storage = app.extensions["mina"].storage
    real = storage.put_file
    seen: dict[str, Any] = {}

    def put_file(key: str, path: Path) -> Any:
        stored = real(key, path)
        if "other" not in seen:
            seen["other"] = None
            thread = threading.Thread(target=lambda: seen.__setitem__("other", act()))
            thread.start()
            thread.join(timeout=60)
        return stored

    monkeypatch.setattr(storage, "put_file", put_file)
    return seen


@pytest.mark.services_only  # SQLite's BEGIN IMMEDIATE would make the other request wait for ours
@pytest.mark.parametrize("same_bytes", [True, False])
def test_an_upload_that_loses_its_index_to_a_concurrent_one(
    client: Any,
    app: Any,
    ogg: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    same_bytes: bool,
) -> None:
    """The other upload commits the index first: ours is its chunk (same bytes, 200) or a 409
    (other bytes) and leaves no blob of its own; one row, one blob either way."""
    cid, auth = create(client)
    theirs = ogg if same_bytes else _tone(tmp_path, 300)
    seen = _during_blob_write(
        app, monkeypatch, lambda: post_chunk(app.test_client(), cid, auth, 0, theirs)
    )
    ours = post_chunk(client, cid, auth, 0, ogg)
    assert seen["other"].status_code == 202
    if same_bytes:
        assert ours.status_code == 200 and ours.get_json()["id"] == seen["other"].get_json()["id"]
    else:
        assert_error(ours, 409, "index_taken")
    assert rows(cid) == 1 and len(blobs(app, cid)) == 1


@pytest.mark.services_only
def test_a_finish_committed_during_the_blob_write_refuses_the_upload(
    client: Any, app: Any, ogg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversation is read again under its lock at the insert: a finish that committed
    after the upload's checks refuses it (409), with no row and no blob left."""
    cid, auth = create(client)
    seen = _during_blob_write(
        app,
        monkeypatch,
        lambda: app.test_client().post(f"/api/conversations/{cid}/finish", json={}, headers=auth),
    )
    assert_error(post_chunk(client, cid, auth, 0, ogg), 409, "finished")
    assert seen["other"].status_code == 202
    assert rows(cid) == 0 and blobs(app, cid) == []


def test_a_direct_upload_is_one_transaction(client: Any, ogg: bytes) -> None:
    """Authorization, precheck and insert share one BEGIN and COMMIT (one pooled connection)."""
    from sqlalchemy import event as sa_event

    from mina.db import get_engine

    cid, auth = create(client)
    me = threading.get_ident()
    begins: list[int] = []

    def began(_conn: Any) -> None:
        if threading.get_ident() == me:
            begins.append(1)

    engine = get_engine()
    sa_event.listen(engine, "begin", began)
    try:
        assert post_chunk(client, cid, auth, 0, ogg).status_code == 202
    finally:
        sa_event.remove(engine, "begin", began)
    assert len(begins) == 1
    assert rows(cid) == 1

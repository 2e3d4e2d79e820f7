"""Presigned uploads against moto's S3 server over HTTP: presign, PUT, confirm.

Confirm gives the same row and the same guarantees as a direct upload (sniff, decode probe,
sha256, idempotent on index); what it refuses is deleted from the bucket. With AssemblyAI the
provider downloads the chunk through a presigned GET instead of an upload.
"""

# ruff: noqa: F811 - pytest fixtures imported from tests.fakes.fixtures

from __future__ import annotations

import hashlib
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mina.db import session_scope
from mina.models import Chunk, Event
from mina.settings import get_settings
from mina.storage import build_storage
from tests.fakes.assemblyai_server import FakeAssemblyAI
from tests.fakes.fixtures import (  # noqa: F401 - fixtures
    all_terminal,
    create,
    fake_assemblyai,
    live_server,
    tone_chunks,
    upload,
)
from tests.fixtures.s3 import S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY
from tests.fixtures.stack import reset_process_caches, wait_for


@pytest.fixture
def s3_env(s3_server: str, env: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """MINA_STORAGE_URL on the moto bucket (a fresh prefix), for this process and workers."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    env(storage_url=f"s3://{S3_BUCKET}/p-{uuid.uuid4().hex[:10]}", s3_endpoint_url=s3_server)
    return s3_server


def make_client() -> Any:
    from api import create_app

    reset_process_caches()
    app = create_app(get_settings())
    app.testing = True
    return app.test_client()


def presign(
    client: Any,
    cid: str,
    auth: dict[str, str],
    index: int,
    size: int,
    content_type: str = "audio/ogg",
) -> Any:
    return client.post(
        f"/api/conversations/{cid}/chunks/presign",
        json={"index": index, "size": size, "content_type": content_type},
        headers=auth,
    )


def put(url: str, headers: dict[str, str], data: bytes) -> int:
    request = urllib.request.Request(url, data=data, headers=headers, method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def confirm(client: Any, cid: str, auth: dict[str, str], index: int, key: str) -> Any:
    return client.post(
        f"/api/conversations/{cid}/chunks/confirm", json={"index": index, "key": key}, headers=auth
    )


def presign_and_put(client: Any, cid: str, auth: dict[str, str], index: int, data: bytes) -> str:
    r = presign(client, cid, auth, index, len(data))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["method"] == "PUT" and body["url"].startswith("http://127.0.0.1:")
    assert put(body["url"], body["headers"], data) == 200
    key: str = body["key"]
    return key


def rows(cid: str) -> int:
    with session_scope() as s:
        return int(
            s.scalar(select(func.count()).select_from(Chunk).where(Chunk.conversation_id == cid))
            or 0
        )


def test_a_confirmed_upload_is_the_same_chunk_as_a_direct_one(
    clean_db: str, s3_env: str, tone_chunks: list[Path]
) -> None:
    client = make_client()
    storage = build_storage(get_settings())
    cid, auth = create(client)
    data = tone_chunks[0].read_bytes()
    key = presign_and_put(client, cid, auth, 0, data)
    assert storage.size(key) == len(data)

    first = confirm(client, cid, auth, 0, key)
    assert first.status_code == 202, first.get_json()
    chunk = first.get_json()
    assert chunk["created"] is True and chunk["status"] == "queued"
    assert chunk["size"] == len(data) and chunk["duration"] == pytest.approx(30.0, abs=0.1)
    again = confirm(client, cid, auth, 0, key)
    assert again.status_code == 200
    assert again.get_json()["id"] == chunk["id"] and again.get_json()["created"] is False

    with session_scope() as s:
        row = s.get(Chunk, chunk["id"])
        assert row is not None and row.storage_key == key and row.mime == "audio/ogg"
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        received = s.scalars(
            select(Event).where(Event.conversation_id == cid, Event.type == "chunk_received")
        ).all()
        assert len(received) == 1
    # The direct path sees the same chunk: same bytes → it, other bytes → 409.
    assert upload(client, cid, auth, 0, tone_chunks[0]).status_code == 200
    with tone_chunks[1].open("rb") as fh:
        r = client.post(
            f"/api/conversations/{cid}/chunks",
            data={"index": "0", "file": (fh, "x.ogg")},
            headers=auth,
            content_type="multipart/form-data",
        )
    assert r.status_code == 409
    # Other bytes presigned for a taken index: 409 at confirm, and that object is deleted.
    other = presign_and_put(client, cid, auth, 0, tone_chunks[1].read_bytes())
    assert confirm(client, cid, auth, 0, other).status_code == 409
    assert not storage.exists(other) and storage.exists(key)
    assert rows(cid) == 1


def test_confirm_refuses_what_is_missing_mismatched_foreign_or_not_audio(
    clean_db: str, s3_env: str, tone_chunks: list[Path]
) -> None:
    client = make_client()
    storage = build_storage(get_settings())
    cid, auth = create(client)
    data = tone_chunks[0].read_bytes()

    r = presign(client, cid, auth, 0, len(data))
    missing = confirm(client, cid, auth, 0, r.get_json()["key"])  # never PUT
    assert missing.status_code == 400
    assert missing.get_json()["error"]["code"] == "not_uploaded"

    r = presign(client, cid, auth, 1, len(data) + 10).get_json()
    put(r["url"], r["headers"], data)  # fewer bytes than announced
    mismatch = confirm(client, cid, auth, 1, r["key"])
    assert mismatch.status_code == 400 and mismatch.get_json()["error"]["code"] == "size_mismatch"
    assert not storage.exists(r["key"])

    junk = b"this is not audio at all" * 100
    junk_key = presign_and_put(client, cid, auth, 2, junk)
    refused = confirm(client, cid, auth, 2, junk_key)
    assert refused.status_code == 415
    assert not storage.exists(junk_key)

    key = presign_and_put(client, cid, auth, 3, data)
    foreign = confirm(client, cid, auth, 4, key)  # presigned for index 3
    assert foreign.status_code == 400 and foreign.get_json()["error"]["code"] == "bad_key"
    other_cid, other_auth = create(client)
    assert confirm(client, other_cid, other_auth, 3, key).status_code == 400
    assert confirm(client, cid, {"Authorization": "Bearer nope"}, 3, key).status_code in (401, 403)

    assert presign(client, cid, auth, 5, 100, "text/plain").status_code == 415
    too_big = presign(client, cid, auth, 5, get_settings().max_chunk_bytes + 1)
    assert too_big.status_code == 413
    assert presign(client, cid, auth, 5, 0).status_code == 400
    assert rows(cid) == 0


def test_presign_needs_s3_storage(clean_db: str) -> None:
    client = make_client()  # the test default: local storage
    cid, auth = create(client)
    r = presign(client, cid, auth, 0, 1000)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "presign_unavailable"


def test_assemblyai_reads_a_presigned_chunk_through_a_presigned_get(
    clean_db: str,
    s3_env: str,
    env: Any,
    workers: Any,
    fake_assemblyai: FakeAssemblyAI,
    live_server: Any,
    tone_chunks: list[Path],
) -> None:
    env(
        transcriber="assemblyai",
        assemblyai_base_url=fake_assemblyai.url,
        assemblyai_api_key=fake_assemblyai.api_key,
        webhook_secret="whsec-presign",
    )
    client = make_client()
    live = live_server(client.application)
    env(public_url=live.url)
    workers(threads=2)
    cid, auth = create(client)
    data = tone_chunks[3].read_bytes()
    key = presign_and_put(client, cid, auth, 0, data)
    assert confirm(client, cid, auth, 0, key).status_code == 202

    [chunk] = wait_for(lambda: all_terminal(cid, 1), timeout=90)
    assert chunk.status == "transcribed", chunk.error
    [submit] = fake_assemblyai.calls_to("submit")
    assert submit.body["audio_url"].startswith(s3_env)  # the bucket, not an upload
    assert "X-Amz-Signature" in submit.body["audio_url"]
    assert fake_assemblyai.calls_to("upload") == []
    assert chunk.provider_job_id is not None
    job = fake_assemblyai.jobs[chunk.provider_job_id]
    assert job["audio_bytes"] == len(data)  # it downloaded exactly our object
    wait_for(lambda: fake_assemblyai.webhook_answers == [200])


def test_openapi_documents_presign_confirm_and_the_webhook(client: Any) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    presign_op = paths["/api/conversations/{conversation_id}/chunks/presign"]["post"]
    confirm_op = paths["/api/conversations/{conversation_id}/chunks/confirm"]["post"]
    hook = paths["/webhooks/transcription/{provider}"]["post"]
    assert {"200", "413", "415"} <= set(presign_op["responses"])
    assert {"200", "202", "400", "409"} <= set(confirm_op["responses"])
    assert {"200", "401"} <= set(hook["responses"])

"""Erasure (docs/memory.md): `DELETE /api/conversations/{id}` (operators) removes the audio, the
rows, the ledger's events and payloads, the search index and the raw provider webhooks of one
conversation, and nothing of another. Local storage through the API, S3 through the service."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from mina.db import session_scope
from mina.memory import erasure
from mina.memory.models import Utterance
from mina.models import Chunk, Conversation, Event, PostTask, WebhookDelivery
from mina.settings import get_settings
from mina.storage import build_storage
from tests.fixtures.memory import revealed, seg, with_audio
from tests.fixtures.stack import OPERATOR

pytestmark = pytest.mark.embedded


def rows_of(cid: str) -> dict[str, int]:
    with session_scope() as s:

        def count(model: Any) -> int:
            column = model.id if model is Conversation else model.conversation_id
            return int(s.scalar(select(func.count()).where(column == cid)) or 0)

        return {m.__name__: count(m) for m in (Conversation, Chunk, PostTask, Event, Utterance)}


def provider_webhooks(cid: str, job: str) -> None:
    """The chunk was transcribed by an async provider whose webhooks are stored raw."""
    with session_scope() as s:
        s.execute(
            update(Chunk)
            .where(Chunk.conversation_id == cid, Chunk.index == 0)
            .values(provider="assemblyai", provider_job_id=job)
        )
        for status in ("processing", "completed"):
            s.add(
                WebhookDelivery(
                    provider="assemblyai",
                    external_id=f"{job}:{status}",
                    body='{"text": "what was said"}',
                )
            )


def search(client: Any, q: str) -> list[str]:
    r = client.get("/api/search", query_string={"q": q}, headers=OPERATOR)
    return [h["conversation_id"] for h in r.get_json()["hits"]]


def test_an_operator_erases_one_conversation_entirely(client: Any) -> None:
    storage = build_storage(get_settings())
    gone, auth = revealed(client, [seg(0.0, "Confidential merger talk.")])
    kept, _ = revealed(client, [seg(0.0, "Confidential budget talk.")])
    gone_keys, kept_keys = with_audio(storage, gone), with_audio(storage, kept)
    provider_webhooks(gone, "job-gone")
    provider_webhooks(kept, "job-kept")
    assert sorted(search(client, "confidential")) == sorted([gone, kept])
    assert rows_of(gone)["Event"] > 0

    r = client.delete(f"/api/conversations/{gone}", headers=OPERATOR)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"conversation_id": gone, "blobs": len(gone_keys), "webhooks": 2}

    assert rows_of(gone) == dict.fromkeys(rows_of(gone), 0)
    assert not any(storage.exists(k) for k in gone_keys)
    assert all(storage.exists(k) for k in kept_keys)
    assert search(client, "confidential") == [kept]
    assert search(client, "merger") == []
    with session_scope() as s:
        bodies = list(s.scalars(select(WebhookDelivery.external_id)))
        trail = list(s.scalars(select(Event).where(Event.type == "conversation_erased")))
    assert sorted(bodies) == ["job-kept:completed", "job-kept:processing"]
    assert [(e.conversation_id, e.payload["conversation_id"]) for e in trail] == [(None, gone)]
    assert rows_of(kept)["Utterance"] == 1

    # gone for its participant too, and a second erasure finds nothing
    assert client.get(f"/api/conversations/{gone}", headers=auth).status_code == 404
    again = client.delete(f"/api/conversations/{gone}", headers=OPERATOR)
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "not_found"


def test_only_operators_erase(client: Any) -> None:
    cid, auth = revealed(client, [seg(0.0, "Mine to keep.")])
    assert client.delete(f"/api/conversations/{cid}").status_code == 401
    r = client.delete(f"/api/conversations/{cid}", headers=auth)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    assert rows_of(cid)["Conversation"] == 1 and search(client, "keep") == [cid]


def test_erasure_on_s3(client: Any, s3_storage: Any) -> None:
    cid, _ = revealed(client, [seg(0.0, "Stored in a bucket.")])
    keys = with_audio(s3_storage, cid, chunks=3)
    out = erasure.erase(s3_storage, cid)
    assert out["blobs"] == len(keys) == 5
    assert not any(s3_storage.exists(k) for k in keys)
    assert list(s3_storage.list(f"conversations/{cid}/")) == []
    assert rows_of(cid)["Conversation"] == 0 and search(client, "bucket") == []


def test_a_conversation_in_progress_can_be_erased_and_a_late_blob_is_swept(
    client: Any,
) -> None:
    import io
    from datetime import timedelta

    from mina import blobs as orphan_blobs
    from mina.db import utcnow

    settings = get_settings()
    storage = build_storage(settings)
    r = client.post("/api/conversations", json={"title": "still recording"})
    cid = r.get_json()["id"]
    keys = with_audio(storage, cid, chunks=2)
    with session_scope() as s:
        s.execute(update(Chunk).where(Chunk.conversation_id == cid).values(status="queued"))
    r = client.delete(f"/api/conversations/{cid}", headers=OPERATOR)
    assert r.status_code == 200 and r.get_json()["blobs"] == len(keys)
    assert rows_of(cid)["Chunk"] == 0

    # a worker that was merging writes its result after the erasure: nothing references it,
    # so the orphan sweep deletes it once the grace period is over
    late = f"conversations/{cid}/merged.ogg"
    storage.put(late, io.BytesIO(b"OggS late"))
    later = utcnow() + timedelta(seconds=settings.blob_grace_seconds + 60)
    # The run's storage also holds earlier tests' orphans: sweep as the scheduler's successive
    # runs would, batch after batch, until nothing is left to delete.
    assert orphan_blobs.sweep(storage, later, settings, limit=100) >= 1
    for _ in range(1000):
        if not orphan_blobs.sweep(storage, later, settings, limit=100):
            break
    assert not storage.exists(late)

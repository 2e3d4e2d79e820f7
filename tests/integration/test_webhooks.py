"""AssemblyAI jobs and webhooks: the fake calls back a live server, real workers finish chunks.

A webhook is verified, stored once and acknowledged before anything talks to the provider; a
repeat is acknowledged and ignored; a bad token is 401 with nothing stored. A job whose webhook
never comes is polled a bounded number of times by `poll_overdue`, then failed with an error
that says what happened.
"""

# ruff: noqa: F811 - pytest fixtures imported from tests.fakes.fixtures

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mina.db import session_scope
from mina.dispatch import NullDispatcher
from mina.models import Conversation, WebhookDelivery
from mina.pipeline import provider_jobs as jobs
from mina.providers.assemblyai import WEBHOOK_HEADER
from mina.settings import get_settings
from mina.webhooks import token
from tests.fakes.assemblyai_server import FakeAssemblyAI
from tests.fakes.fixtures import (  # noqa: F401 - fixtures
    all_terminal,
    chunks_of,
    create,
    fake_assemblyai,
    live_server,
    tone_chunks,
    upload,
)
from tests.fixtures.stack import reset_process_caches, wait_for

SECRET = "whsec-test-secret"
URL = "/webhooks/transcription/assemblyai"


def aai_env(fake: FakeAssemblyAI, **extra: Any) -> dict[str, Any]:
    return {
        "transcriber": "assemblyai",
        "assemblyai_base_url": fake.url,
        "assemblyai_api_key": fake.api_key,
        "webhook_secret": SECRET,
        "provider_timeout_seconds": 5,
        **extra,
    }


def make_app() -> Any:
    from api import create_app

    reset_process_caches()
    app = create_app(get_settings())
    app.testing = True
    return app


def deliveries() -> list[WebhookDelivery]:
    with session_scope() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def post_hook(client: Any, chunk: str | None, tok: str | None, body: Any) -> Any:
    headers = {WEBHOOK_HEADER: tok} if tok else {}
    query = f"?chunk={chunk}" if chunk else ""
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(URL + query, data=data, headers=headers, content_type="application/json")


def test_jobs_are_finished_through_the_webhook_once_each(
    clean_db: str,
    env: Any,
    workers: Any,
    fake_assemblyai: FakeAssemblyAI,
    live_server: Any,
    tone_chunks: list[Path],
) -> None:
    env(**aai_env(fake_assemblyai))
    app = make_app()
    live = live_server(app)
    env(public_url=live.url)  # the webhook URL the workers hand to the provider
    fake_assemblyai.webhook_repeats = 2  # providers deliver at least once
    workers(threads=2)
    client = app.test_client()
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[0])
    upload(client, cid, auth, 1, tone_chunks[1])
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202

    chunks = wait_for(lambda: all_terminal(cid, 2), timeout=90)
    assert [c.status for c in chunks] == ["transcribed", "transcribed"]
    for chunk in chunks:
        assert chunk.provider == "assemblyai" and chunk.provider_job_id
        assert chunk.text == "Fake utterance one. Fake utterance two."
        assert [s.get("speaker") for s in chunk.segments or []] == [None, None]
        assert (chunk.segments or [])[-1]["end"] == pytest.approx(30.0, abs=0.1)
    wait_for(lambda: len(fake_assemblyai.webhook_answers) == 4)
    assert fake_assemblyai.webhook_answers == [200, 200, 200, 200]
    # The delivery is marked done right after its chunk completes.
    stored = wait_for(lambda: (d := deliveries()) and {x.status for x in d} == {"done"} and d)
    assert len(stored) == 2
    assert {json.loads(d.body)["transcript_id"] for d in stored} == {
        c.provider_job_id for c in chunks
    }
    assert len(fake_assemblyai.calls_to("fetch")) == 2  # the repeats fetched nothing
    for call in fake_assemblyai.calls_to("submit"):
        assert call.body["speaker_labels"] is True
        assert call.body["webhook_url"].startswith(f"{live.url}{URL}?chunk=")
        assert call.body["webhook_auth_header_name"] == WEBHOOK_HEADER
        assert SECRET not in json.dumps(call.body)  # only a derived token leaves
        assert call.body["audio_url"].startswith(f"{fake_assemblyai.url}/files/")  # uploaded
    wait_for(lambda: _flag(cid))


def _flag(cid: str) -> bool:
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        return bool(conv and conv.is_all_chunks_transcribed)


def test_bad_tokens_and_bodies_are_refused_and_nothing_is_stored(clean_db: str, env: Any) -> None:
    env(webhook_secret=SECRET)
    client = make_app().test_client()
    body = {"transcript_id": "job-1", "status": "completed"}
    good = token(SECRET, "assemblyai", "c1")

    for chunk, tok in [
        ("c1", "0" * 64),  # wrong
        ("c1", token(SECRET, "assemblyai", "c2")),  # another chunk's
        ("c1", token("other-secret", "assemblyai", "c1")),  # another secret's
        ("c1", None),  # none
        (None, good),  # no chunk to check it against
    ]:
        r = post_hook(client, chunk, tok, body)
        assert r.status_code == 401, (chunk, tok)
        assert r.get_json()["error"]["code"] == "unauthorized"
    assert post_hook(client, "c1", good, "{not json").status_code == 400
    assert post_hook(client, "c1", good, {"status": "completed"}).status_code == 400
    r = client.post(
        "/webhooks/transcription/nope?chunk=c1", json=body, headers={WEBHOOK_HEADER: good}
    )
    assert r.status_code == 404
    assert deliveries() == []

    env(webhook_secret="")  # webhooks not configured: nothing can be verified
    r = post_hook(make_app().test_client(), "c1", good, body)
    assert r.status_code == 401 and deliveries() == []


def test_a_webhook_is_stored_and_acknowledged_without_calling_the_provider(
    clean_db: str, clean_redis: None, env: Any
) -> None:
    # The provider is unreachable and no worker runs: the request can only verify and store.
    env(webhook_secret=SECRET, assemblyai_base_url="http://127.0.0.1:9", assemblyai_api_key="k")
    client = make_app().test_client()
    raw = json.dumps({"transcript_id": "5551234", "status": "completed"})
    tok = token(SECRET, "assemblyai", "chunk-a")

    first = post_hook(client, "chunk-a", tok, raw)
    assert first.status_code == 200 and first.get_json()["status"] == "accepted"
    again = post_hook(client, "chunk-a", tok, raw)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    [stored] = deliveries()
    assert stored.body == raw and stored.status == "pending"
    assert stored.provider == "assemblyai" and stored.external_id == "5551234:completed"
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mina_request_seconds_count{endpoint="webhook",status="200"}' in text


def test_a_job_without_webhook_is_polled_a_bounded_number_of_times_then_failed(
    client: Any,
    env: Any,
    workers: Any,
    fake_assemblyai: FakeAssemblyAI,
    tone_chunks: list[Path],
) -> None:
    env(**aai_env(fake_assemblyai, webhook_secret="", provider_job_timeout_seconds=300))
    fake_assemblyai.hold = True
    workers(threads=2)
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[0])
    upload(client, cid, auth, 1, tone_chunks[1])

    def submitted() -> list[Any] | None:
        found = chunks_of(cid)
        return found if len(found) == 2 and all(c.provider_job_id for c in found) else None

    a, b = wait_for(submitted, timeout=60)
    for call in fake_assemblyai.calls_to("submit"):
        assert "webhook_url" not in call.body
    last = max(a.provider_submitted_at, b.provider_submitted_at)
    for c in (a, b):
        assert c.status == "processing"
        assert c.lease_until > c.provider_submitted_at + timedelta(seconds=300)

    settings, null = get_settings(), NullDispatcher()
    assert jobs.poll_chunk(a.id, settings, null) == "pending"  # the per-chunk hook counts nothing
    assert jobs.poll_chunk("no-such-chunk", settings, null) == "unknown"
    assert jobs.poll_overdue(settings, null, now=last + timedelta(seconds=10)) == 0  # not due
    assert jobs.poll_overdue(settings, null, now=last + timedelta(seconds=101)) == 2
    assert [c.provider_polls for c in chunks_of(cid)] == [1, 1]

    fake_assemblyai.release(a.provider_job_id)
    wait_for(lambda: fake_assemblyai.status(a.provider_job_id) == "completed")
    assert jobs.poll_overdue(settings, null, now=last + timedelta(seconds=201)) == 2
    done, waiting = chunks_of(cid)
    assert done.status == "transcribed" and done.text == "Fake utterance one. Fake utterance two."
    assert waiting.status == "processing" and waiting.provider_polls == 2

    assert jobs.poll_overdue(settings, null, now=last + timedelta(seconds=301)) == 1
    _, failed = chunks_of(cid)
    assert failed.status == "failed" and failed.error_kind == "transient"
    assert failed.error == (
        f"assemblyai job {b.provider_job_id}: no result after 3 polls over 300s and no webhook"
    )
    assert jobs.poll_overdue(settings, null, now=last + timedelta(seconds=900)) == 0
    assert len(fake_assemblyai.calls_to("fetch")) == 6
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_delivery_whose_message_was_lost_is_completed_by_the_scheduler_hook(
    clean_db: str,
    env: Any,
    workers: Any,
    fake_assemblyai: FakeAssemblyAI,
    tone_chunks: list[Path],
) -> None:
    # The provider cannot reach us (closed port), so the job waits; then workers go away.
    env(**aai_env(fake_assemblyai, public_url="http://127.0.0.1:9"))
    client = make_app().test_client()
    running = workers(threads=2)
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[5])
    wait_for(lambda: fake_assemblyai.webhook_answers == [0], timeout=60)
    [chunk] = chunks_of(cid)
    assert chunk.status == "processing" and chunk.provider_job_id
    running.stop()

    body = {"transcript_id": chunk.provider_job_id, "status": "completed"}
    r = post_hook(client, chunk.id, token(SECRET, "assemblyai", chunk.id), body)
    assert r.status_code == 200  # stored and enqueued; no worker will take the message
    [delivery] = deliveries()
    assert delivery.status == "pending"

    settings, null = get_settings(), NullDispatcher()
    assert jobs.redeliver_pending(settings, null, delivery.received_at) == 0  # not late yet
    later = delivery.received_at + timedelta(seconds=settings.dispatch_delay_seconds + 1)
    assert jobs.poll_overdue(settings, null, now=later) == 1
    [done] = chunks_of(cid)
    assert done.status == "transcribed" and done.error is None
    assert deliveries()[0].status == "done"

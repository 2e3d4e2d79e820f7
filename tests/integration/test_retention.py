"""Audio retention (docs/memory.md): `MINA_AUDIO_RETENTION_DAYS` deletes the audio of
conversations revealed that long ago and keeps their transcript, results and search index;
idempotent, with an event, never touching a conversation in progress. Local storage and S3."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from mina.db import session_scope, utcnow
from mina.memory import retention
from mina.memory.models import AudioErasure
from mina.models import Conversation, Event
from mina.pipeline.conversation_state import RUNNING
from mina.settings import get_settings
from mina.storage import build_storage
from tests.fixtures.memory import revealed, seg, with_audio
from tests.fixtures.stack import OPERATOR

pytestmark = pytest.mark.embedded


def revealed_days_ago(cid: str, days: float, **values: Any) -> None:
    with session_scope() as s:
        s.execute(
            update(Conversation)
            .where(Conversation.id == cid)
            .values(revealed_at=utcnow() - timedelta(days=days), **values)
        )


def events(cid: str, type_: str) -> list[Event]:
    with session_scope() as s:
        q = select(Event).where(Event.conversation_id == cid, Event.type == type_)
        return list(s.scalars(q))


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, client: Any) -> Any:
    if request.param == "local":
        return build_storage(get_settings())
    return request.getfixturevalue("s3_storage")


def test_old_audio_is_deleted_once_and_the_rest_is_kept(
    client: Any, storage: Any, env: Any
) -> None:
    env(audio_retention_days=30)
    settings = get_settings()
    old, auth = revealed(client, [seg(0.0, "The retention policy applies here.")])
    recent, _ = revealed(client, [seg(0.0, "A recent meeting.")])
    busy, _ = revealed(client, [seg(0.0, "A meeting being processed again.")])
    keys = {cid: with_audio(storage, cid) for cid in (old, recent, busy)}
    revealed_days_ago(old, 31)
    revealed_days_ago(recent, 29)
    revealed_days_ago(busy, 90, processing_status=RUNNING)  # an operator's retry under way

    assert retention.prune(storage, settings) == 1
    assert not any(storage.exists(k) for k in keys[old])
    assert all(storage.exists(k) for k in keys[recent] + keys[busy])
    with session_scope() as s:
        conv = s.get(Conversation, old)
        assert conv is not None and conv.merged_audio_key is None
        mark = s.get(AudioErasure, old)
        assert mark is not None and (mark.blobs, mark.reason) == (len(keys[old]), "retention")
    [ev] = events(old, "audio_deleted")
    assert ev.payload == {"reason": "retention", "days": 30, "blobs": len(keys[old])}

    # idempotent: nothing left to do, no second event
    assert retention.prune(storage, settings) == 0
    assert len(events(old, "audio_deleted")) == 1

    # transcript and search stay; the audio answers why it is gone
    r = client.get(f"/api/conversations/{old}/transcript", headers=auth)
    assert r.status_code == 200 and "retention policy" in r.get_json()["segments"][0]["text"]
    found = client.get("/api/search", query_string={"q": "retention"}, headers=OPERATOR)
    [hit] = found.get_json()["hits"]
    assert (hit["conversation_id"], hit["audio"], hit["audio_url"]) == (old, False, None)
    r = client.get(f"/api/conversations/{old}/audio", headers=auth)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "audio_erased"


def test_retention_unset_keeps_audio_forever(client: Any, storage: Any) -> None:
    assert get_settings().audio_retention_days is None
    cid, _ = revealed(client, [seg(0.0, "Keep me.")])
    keys = with_audio(storage, cid)
    revealed_days_ago(cid, 3650)
    assert retention.prune(storage, get_settings()) == 0
    assert all(storage.exists(k) for k in keys)
    assert events(cid, "audio_deleted") == []


def test_a_conversation_never_revealed_is_never_pruned(client: Any, env: Any) -> None:
    env(audio_retention_days=1)
    storage = build_storage(get_settings())
    r = client.post("/api/conversations", json={"title": "still recording"})
    cid = r.get_json()["id"]
    keys = with_audio(storage, cid, chunks=1)
    with session_scope() as s:
        s.execute(
            update(Conversation)
            .where(Conversation.id == cid)
            .values(created_at=utcnow() - timedelta(days=400))
        )
    assert retention.prune(storage, get_settings()) == 0
    assert all(storage.exists(k) for k in keys)


def test_the_retention_setting_is_bounded_and_the_scheduler_runs_the_job(env: Any) -> None:
    from scheduler.service import jobs

    for bad in ("0", "-3", "many", "36501"):
        env(audio_retention_days=bad)
        with pytest.raises(ValueError):
            get_settings()
    env(audio_retention_days=7)
    assert get_settings().audio_retention_days == 7
    from mina.repair import Repair

    settings = get_settings()
    repair = Repair(
        settings=settings, dispatcher=None, storage=build_storage(settings), poll_provider=None
    )  # type: ignore[arg-type]
    assert "audio_retention" in [j.name for j in jobs(repair, settings)]

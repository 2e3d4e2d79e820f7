"""Models and migrations on PostgreSQL and SQLite: constraints make duplicates impossible."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mina.db import make_engine
from mina.models import Chunk, Conversation, Event, PostTask, WebhookDelivery
from mina_cli import migrate


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'models.db'}"
        return
    import psycopg

    name = f"mina_models_{tmp_path.name[-12:].replace('-', '_').lower()}"
    conn = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture
def session(url: str) -> Iterator[Session]:
    migrate.upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine)() as s:
        yield s
    engine.dispose()


def conversation(s: Session) -> Conversation:
    conv = Conversation(title="t", token_hash="0" * 64)
    s.add(conv)
    s.commit()
    return conv


def chunk(conv: Conversation, index: int, sha: str = "a") -> Chunk:
    return Chunk(
        conversation_id=conv.id,
        index=index,
        sha256=sha * 64,
        size=1,
        mime="audio/ogg",
        storage_key=f"k/{index}/{sha}",
    )


def test_chunk_index_is_unique_per_conversation(session: Session) -> None:
    conv, other = conversation(session), conversation(session)
    session.add_all([chunk(conv, 0), chunk(other, 0)])
    session.commit()
    session.add(chunk(conv, 0, "b"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_post_task_is_unique_per_conversation_and_name(session: Session) -> None:
    conv = conversation(session)
    session.add(PostTask(conversation_id=conv.id, name="summary"))
    session.commit()
    session.add(PostTask(conversation_id=conv.id, name="summary"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_webhook_delivery_is_unique_per_provider_and_external_id(session: Session) -> None:
    session.add(WebhookDelivery(provider="assemblyai", external_id="job-1", body="{}"))
    session.add(WebhookDelivery(provider="other", external_id="job-1", body="{}"))
    session.commit()
    session.add(WebhookDelivery(provider="assemblyai", external_id="job-1", body="{}"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_event_ids_are_monotonic_and_defaults_are_the_initial_states(session: Session) -> None:
    conv = conversation(session)
    assert (conv.status, conv.processing_status, conv.is_finished) == (
        "recording",
        "pending",
        False,
    )
    ids = []
    for n in range(5):
        ev = Event(conversation_id=conv.id, type="chunk_received", payload={"n": n})
        session.add(ev)
        session.commit()
        ids.append(ev.id)
    assert ids == sorted(ids) and len(set(ids)) == 5
    c = chunk(conv, 3)
    session.add(c)
    session.commit()
    assert (c.status, c.attempts, c.error) == ("queued", 0, None)


def test_downgrade_removes_every_table_and_upgrade_restores_them(url: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    tables = {"conversation", "chunk", "post_task", "event", "webhook_delivery"}
    assert tables <= set(sa.inspect(engine).get_table_names())
    migrate.downgrade(url, "base")
    assert not tables & set(sa.inspect(engine).get_table_names())
    migrate.upgrade(url)
    assert tables <= set(sa.inspect(engine).get_table_names())
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("chunk")}
    assert {"ix_chunk_status_queued", "ix_chunk_status_lease"} <= indexes
    engine.dispose()


def test_models_and_migrations_do_not_drift(url: str) -> None:
    migrate.upgrade(url)
    migrate.check(url)  # raises if autogenerate would change anything

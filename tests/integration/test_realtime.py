"""Realtime delivery against a live server: python-socketio clients, SSE, real workers.

The server is the app on a real port (werkzeug's threaded server, as `mina web`); workers are
real (`dramatiq` subprocesses on Redis, or the embedded worker threads). Clients dedupe by
ledger id, as docs/realtime.md tells pages to.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from sqlalchemy import func, select
from werkzeug.serving import make_server

from mina.db import session_scope, utcnow
from mina.models import Event
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.stack import wait_for

pytestmark = pytest.mark.embedded

FAST = {
    "transcriber": "simulated",
    "sim_latency_seconds": 0.2,
    "language_provider": "simulated",
}


@dataclass
class Live:
    url: str
    app: Any

    def create(self, title: str = "sync") -> tuple[str, str]:
        r = requests.post(f"{self.url}/api/conversations", json={"title": title}, timeout=10)
        assert r.status_code == 201, r.text
        body = r.json()
        return body["id"], body["token"]

    def upload(self, cid: str, token: str, index: int, path: Path) -> None:
        with path.open("rb") as fh:
            r = requests.post(
                f"{self.url}/api/conversations/{cid}/chunks",
                data={"index": str(index)},
                files={"file": (path.name, fh, "audio/ogg")},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        assert r.status_code == 202, r.text

    def finish(self, cid: str, token: str) -> None:
        r = requests.post(
            f"{self.url}/api/conversations/{cid}/finish",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 202, r.text

    def record(self, m: Meeting, title: str = "sync") -> tuple[str, str]:
        cid, token = self.create(title)
        for index, path in enumerate(m.chunks):
            self.upload(cid, token, index, path)
        self.finish(cid, token)
        return cid, token


@pytest.fixture
def live(clean_db: str) -> Iterator[Callable[[], Live]]:
    """Serve a fresh app (built from the settings in force now) on a free port."""
    servers: list[Any] = []

    def start() -> Live:
        from api import create_app
        from mina.settings import get_settings
        from tests.fixtures.stack import reset_process_caches

        reset_process_caches()
        app = create_app(get_settings())
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Live(f"http://127.0.0.1:{server.server_port}", app)

    yield start
    for server in servers:
        server.shutdown()


@dataclass
class Listener:
    """A Socket.IO client that records every event it receives."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._any)
        self.sio.connect(self.url, headers=self.headers, wait_timeout=10)

    def _any(self, event: str, data: Any = None) -> None:
        with self.lock:
            self.received.append((event, data))

    def join(self, **payload: Any) -> Any:
        return self.sio.call("join", payload, timeout=30)

    def close(self) -> None:
        self.sio.disconnect()

    def events(self) -> list[dict[str, Any]]:
        """Ledger events received, deduped by id, in id order (what a page keeps)."""
        with self.lock:
            got = {d["id"]: d for e, d in self.received if isinstance(d, dict) and "id" in d}
        return [got[i] for i in sorted(got)]

    def names(self) -> list[str]:
        with self.lock:
            return [e for e, _ in self.received]

    def has(self, type_: str) -> bool:
        return any(e["type"] == type_ for e in self.events())


def ledger(cid: str) -> list[tuple[int, str]]:
    with session_scope() as s:
        return [
            (i, t)
            for i, t in s.execute(
                select(Event.id, Event.type).where(Event.conversation_id == cid).order_by(Event.id)
            )
        ]


def revealed(cid: str) -> bool:
    return any(t == "post_transcription_reveal" for _, t in ledger(cid))


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("talk"), minutes=0.5, chunk_seconds=10)


@pytest.fixture
def listeners() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(url: str, **kw: Any) -> Listener:
        made.append(Listener(url, **kw))
        return made[-1]

    yield make
    for listener in made:
        if listener.sio.connected:
            listener.close()


def test_participant_gets_its_conversation_live_and_nothing_from_another(
    live: Any, workers: Any, env: Any, listeners: Any, talk: Meeting
) -> None:
    env(**FAST)
    server = live()
    workers()
    mine, token = server.create("mine")
    other, other_token = server.create("other")
    me = listeners(server.url)
    before = ledger(mine)  # what exists already is replayed
    ack = me.join(conversation_id=mine, token=token, after=0)
    assert ack == {
        "ok": True,
        "room": f"conversation:{mine}",
        "conversation_id": mine,
        "replayed": len(before),
        "last_id": before[-1][0] if before else 0,
    }
    for index, path in enumerate(talk.chunks):
        server.upload(mine, token, index, path)
        server.upload(other, other_token, index, path)
    server.finish(mine, token)
    server.finish(other, other_token)

    wait_for(lambda: revealed(mine) and revealed(other), timeout=180)
    expected = ledger(mine)
    wait_for(lambda: [(e["id"], e["type"]) for e in me.events()] == expected, timeout=30)

    got = me.events()
    assert {e["conversation_id"] for e in got} == {mine}
    assert not {i for i, _ in ledger(other)} & {e["id"] for e in got}
    types = [e["type"] for e in got]
    n = len(talk.chunks)
    assert types.count("chunk_received") == n and types.count("chunk_transcribed") == n
    assert types.index("transcription_complete") > max(
        i for i, t in enumerate(types) if t == "chunk_transcribed"
    )
    for task in ("merge", "diarize", "analytics", "refinement", "tasks", "summary"):
        assert types.index(f"{task}_started") < types.index(f"{task}_ready")
    assert types.count("post_transcription_reveal") == 1
    reveal = next(e for e in got if e["type"] == "post_transcription_reveal")
    assert reveal["payload"]["status"] == "ready"
    transcribed = [e for e in got if e["type"] == "chunk_transcribed"]
    assert sorted(e["payload"]["index"] for e in transcribed) == list(range(n))
    assert all(e["payload"]["text"].startswith("Simulated sentence") for e in transcribed)
    # the Socket.IO event name is the ledger type, and nothing but joined came besides
    names = me.names()
    assert set(names) - {e["type"] for e in got} == {"joined"}


def test_rejoin_with_after_ends_with_the_complete_sequence(
    live: Any, workers: Any, env: Any, listeners: Any, talk: Meeting
) -> None:
    env(**FAST, sim_task_latency="refinement=1,summary=1")
    server = live()
    workers()
    cid, token = server.create()
    first = listeners(server.url)
    first.join(conversation_id=cid, token=token)
    for index, path in enumerate(talk.chunks):
        server.upload(cid, token, index, path)
    wait_for(lambda: first.has("chunk_transcribed"), timeout=60)
    first.close()  # gone mid-way
    seen = first.events()
    after = seen[-1]["id"]
    server.finish(cid, token)
    wait_for(lambda: any(t == "transcription_complete" for _, t in ledger(cid)), timeout=120)
    missed = [i for i, _ in ledger(cid) if i > after]
    assert missed, "events happened while the client was away"

    second = listeners(server.url)
    ack = second.join(conversation_id=cid, token=token, after=after)
    assert ack["ok"] and ack["replayed"] >= len(missed) and ack["last_id"] >= missed[-1]
    wait_for(lambda: revealed(cid), timeout=120)
    expected = ledger(cid)

    def union() -> list[tuple[int, str]]:
        both = {e["id"]: e["type"] for e in seen + second.events()}
        return sorted(both.items())

    # the first client's events plus the second's replay and stream, deduped by id: the whole
    # ledger in order. Everything after `after` can only have come from the rejoin.
    wait_for(lambda: union() == expected, timeout=30)


def test_clients_joining_during_a_burst_miss_nothing(live: Any, listeners: Any) -> None:
    """Join = enter the room, then replay: an event committed at any moment around a join
    reaches the client live or by replay (or both; dropped by id)."""
    from mina import events

    server = live()
    cid, token = server.create()
    burst = 300
    written = threading.Event()

    def write() -> None:
        for n in range(burst):
            with session_scope() as s:
                events.record(s, cid, "probe", {"n": n})
        written.set()

    writer = threading.Thread(target=write)
    writer.start()
    clients = []
    for step in range(6):  # join at different points of the burst, from zero and from the middle
        wait_for(lambda step=step: len(ledger(cid)) >= step * burst // 8, timeout=60)
        client = listeners(server.url)
        known = ledger(cid)
        after = known[len(known) // 2][0] if step % 2 and known else 0
        assert client.join(conversation_id=cid, token=token, after=after)["ok"]
        clients.append((client, after))
    writer.join()
    assert written.is_set()
    expected = ledger(cid)
    assert [t for _, t in expected].count("probe") == burst
    for client, after in clients:
        wanted = [i for i, _ in expected if i > after]
        wait_for(
            lambda client=client, wanted=wanted: {e["id"] for e in client.events()} >= set(wanted),
            timeout=30,
        )
        got = [e["id"] for e in client.events() if e["id"] > after]
        assert got == wanted


def test_wrong_token_gets_one_join_error_and_nothing_else(
    live: Any, workers: Any, env: Any, listeners: Any, talk: Meeting
) -> None:
    env(**FAST)
    server = live()
    workers()
    cid, token = server.create("target")
    _other, other_token = server.create("other")
    witness = listeners(server.url)
    witness.join(conversation_id=cid, token=token)

    cases = {
        "forbidden": {"conversation_id": cid, "token": other_token, "after": 0},
        "unauthorized": {"conversation_id": cid},
        "not_found": {"conversation_id": "0" * 32, "token": token},
        "invalid": {"conversation_id": cid, "token": token, "after": -1},
    }
    intruders = {}
    for code, payload in cases.items():
        intruder = listeners(server.url)
        ack = intruder.join(**payload)
        assert ack["ok"] is False and ack["error"]["code"] == code
        intruders[code] = intruder
    not_operator = listeners(server.url)
    assert not_operator.join(room="operators", token=token)["error"]["code"] == "forbidden"
    intruders["operators"] = not_operator

    for index, path in enumerate(talk.chunks[:2]):
        server.upload(cid, token, index, path)
    server.finish(cid, token)
    wait_for(lambda: revealed(cid), timeout=180)
    wait_for(lambda: witness.has("post_transcription_reveal"), timeout=30)
    for code, intruder in intruders.items():
        assert intruder.names() == ["join_error"], code
        [(_, error)] = intruder.received
        assert error["code"] == ("forbidden" if code == "operators" else code)
        assert error["message"]


def test_operators_get_coalesced_dashboard_refresh(
    live: Any, workers: Any, env: Any, listeners: Any, talk: Meeting
) -> None:
    env(**FAST)
    server = live()
    workers()
    by_token = listeners(server.url)
    assert by_token.join(room="operators", token=OPERATOR_TOKEN)["ok"]
    cookie = server.app.session_interface.get_signing_serializer(server.app).dumps(
        {"operator_token": OPERATOR_TOKEN}
    )
    by_cookie = listeners(server.url, headers={"Cookie": f"session={cookie}"})
    assert by_cookie.join(room="operators")["ok"]  # the dashboard's login session

    cid, _ = server.record(talk)
    wait_for(lambda: revealed(cid), timeout=180)

    def refreshed(listener: Listener) -> list[list[str]]:
        with listener.lock:
            return [d["conversation_ids"] for e, d in listener.received if e == "dashboard_refresh"]

    for listener in (by_token, by_cookie):
        wait_for(lambda listener=listener: any(cid in ids for ids in refreshed(listener)))
        assert set(listener.names()) <= {"joined", "dashboard_refresh"}  # no ledger events
    # coalesced: fewer refreshes than ledger events (each refresh names what changed)
    assert len(refreshed(by_token)) < len(ledger(cid))


def sse_frames(response: requests.Response) -> Iterator[dict[str, str]]:
    frame: dict[str, str] = {}
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            frame.setdefault("comment", line)
        else:
            key, _, value = line.partition(":")
            frame[key] = value.lstrip(" ")


def test_sse_stream_resumes_with_last_event_id(
    live: Any, workers: Any, env: Any, talk: Meeting
) -> None:
    env(**FAST, sse_max_seconds=60, sse_keepalive_seconds=1)
    server = live()
    workers()
    cid, token = server.create()
    url = f"{server.url}/api/conversations/{cid}/events/stream"
    refused = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

    got: list[dict[str, Any]] = []
    with requests.get(url, params={"token": token}, stream=True, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        frames = sse_frames(r)
        assert next(frames) == {"retry": "2000"}
        server.upload(cid, token, 0, talk.chunks[0])
        server.upload(cid, token, 1, talk.chunks[1])
        for f in frames:
            if "comment" in f:
                continue
            message = json.loads(f["data"])
            assert f["id"] == str(message["id"]) and f["event"] == message["type"]
            got.append(message)
            if message["type"] == "chunk_transcribed":
                break
    resume_after = got[-1]["id"]
    server.finish(cid, token)
    wait_for(lambda: revealed(cid), timeout=180)

    rest: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(resume_after)}
    with requests.get(url, params={"after": 0}, headers=headers, stream=True, timeout=60) as r:
        for f in sse_frames(r):
            if "data" in f and f.get("event") != "end":
                rest.append(json.loads(f["data"]))
                if rest[-1]["type"] == "post_transcription_reveal":
                    break
    assert rest[0]["id"] > resume_after
    assert [(m["id"], m["type"]) for m in got + rest] == ledger(cid)


def test_sse_stream_is_bounded_and_keeps_alive(live: Any, env: Any) -> None:
    env(sse_max_seconds=2.5, sse_keepalive_seconds=1, sse_poll_seconds=0.2)
    server = live()
    cid, token = server.create()
    url = f"{server.url}/api/conversations/{cid}/events/stream"
    with requests.get(url, params={"token": token}, stream=True, timeout=30) as r:
        frames = list(sse_frames(r))  # returns: the server ends the stream
    assert any(f.get("comment") == ": keep-alive" for f in frames)
    sent = [int(f["id"]) for f in frames if "id" in f]
    assert sent == [i for i, _ in ledger(cid)]
    end = frames[-1]
    assert end["event"] == "end" and json.loads(end["data"]) == {
        "reason": "max_duration",
        "last_id": sent[-1] if sent else 0,
    }


# The relay and the ledger, without a server


@dataclass
class Recorder:
    """An emitter that keeps what it was asked to send (the edge of the test)."""

    sent: list[tuple[float, str, dict[str, Any], str]] = field(default_factory=list)

    def emit(self, event: str, data: dict[str, Any], room: str) -> None:
        self.sent.append((time.monotonic(), event, data, room))

    def refreshes(self) -> list[tuple[float, list[str]]]:
        return [(t, d["conversation_ids"]) for t, e, d, _ in self.sent if e == "dashboard_refresh"]


def _conversations_with_events(n: int, per: int) -> list[dict[str, Any]]:
    from mina import conversations, events

    messages = []
    for _ in range(n):
        with session_scope() as s:
            conv, _token = conversations.create(s, "relay")
            cid = conv.id
        for k in range(per):
            with session_scope() as s:
                messages.append(events.as_message(events.record(s, cid, "probe", {"k": k})))
    events.relay.flush()  # this process's relay (an app's, from an earlier test) is done
    with session_scope() as s:  # and the test starts from unstamped rows
        s.execute(Event.__table__.update().values(emitted_at=None))
    return messages


def unstamped(messages: list[dict[str, Any]]) -> int:
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count()).where(
                    Event.id.in_([m["id"] for m in messages]), Event.emitted_at.is_(None)
                )
            )
            or 0
        )


def test_relay_emits_in_order_stamps_and_coalesces_refreshes(clean_db: str) -> None:
    from mina.relay import Relay

    messages = _conversations_with_events(3, 10)
    recorder = Recorder()
    relay = Relay()
    relay.set_emitter(recorder, dashboard_interval=0.4)
    started = time.monotonic()
    for m in messages:
        relay.publish([m])  # one commit each: 30 changes in a burst
    assert relay.flush(timeout=30)
    elapsed = time.monotonic() - started

    emitted = [(d["id"], room) for _, e, d, room in recorder.sent if e == "probe"]
    assert emitted == [(m["id"], f"conversation:{m['conversation_id']}") for m in messages]
    refreshes = recorder.refreshes()
    assert {c for _, ids in refreshes for c in ids} == {m["conversation_id"] for m in messages}
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(refreshes)]
    assert all(gap >= 0.4 for gap in gaps), gaps  # never more than one per interval
    assert len(refreshes) <= 2 + elapsed / 0.4 < len(messages)
    assert unstamped(messages) == 0


def test_relay_stamps_a_burst_in_few_transactions_and_without_a_flush(clean_db: str) -> None:
    """Emitted at once, stamped together: one UPDATE per `stamp_interval`, not one per event,
    and the stamps are written by the relay's own timer (no flush asked for)."""
    from sqlalchemy import event as sa_event

    from mina.db import get_engine
    from mina.relay import Relay

    messages = _conversations_with_events(2, 15)
    stamps: list[float] = []

    def count(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE EVENT SET EMITTED_AT"):
            stamps.append(time.monotonic())

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", count)
    recorder = Recorder()
    relay = Relay(stamp_interval=0.3)
    relay.set_emitter(recorder, dashboard_interval=0.3)
    try:
        started = time.monotonic()
        for m in messages:
            relay.publish([m])  # one commit each: 30 events in a burst
            time.sleep(0.01)
        wait_for(lambda: unstamped(messages) == 0, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    emitted = [d["id"] for _, e, d, _ in recorder.sent if e == "probe"]
    assert emitted == [m["id"] for m in messages]  # every one went out, in order
    assert 1 <= len(stamps) <= 2 + elapsed / 0.3 < len(messages), (len(stamps), elapsed)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.25 for gap in gaps), gaps


def test_unemitted_events_stay_in_the_ledger_until_the_relay_job(clean_db: str) -> None:
    from mina import events
    from mina.realtime import build_emitter
    from mina.relay import Relay
    from mina.settings import Settings

    messages = _conversations_with_events(1, 3)
    down = build_emitter(Settings(socketio_queue_url="redis://127.0.0.1:1/0"))  # nothing listens
    assert down is not None
    relay = Relay()
    relay.set_emitter(down)
    relay.publish(messages)
    assert relay.flush(timeout=30)
    assert unstamped(messages) == 3

    recorder, previous = Recorder(), events.relay.emitter
    events.relay.set_emitter(recorder)
    try:
        with session_scope() as s:
            waiting = s.scalar(select(func.count()).where(Event.emitted_at.is_(None)))
            assert events.emit_unemitted(s, older_than=utcnow()) == waiting >= 3
    finally:
        events.relay.set_emitter(previous)
    assert [d["id"] for _, e, d, _ in recorder.sent if e == "probe"] == [m["id"] for m in messages]
    assert unstamped(messages) == 0


def test_event_ids_of_a_conversation_are_allocated_in_commit_order(clean_db: str) -> None:
    """A second writer cannot take an id until the first commits: `id > N` never skips."""
    from mina import conversations, events

    with session_scope() as s:
        conv, _token = conversations.create(s, "order")
        cid = conv.id
    committed_first = threading.Event()
    second: dict[str, Any] = {}

    def writer() -> None:
        with session_scope() as s:
            ev = events.record(s, cid, "second")
            second["id"], second["after_first_commit"] = ev.id, committed_first.is_set()

    with session_scope() as s:
        first = events.record(s, cid, "first").id
        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(timeout=1.0)  # it must be waiting for our lock, not done
        assert thread.is_alive()
        committed_first.set()  # (set just before our commit: the writer can only go on after)
    thread.join(timeout=30)
    assert second == {"id": second["id"], "after_first_commit": True}
    assert second["id"] > first


def test_in_process_watchers_get_committed_events_only(clean_db: str) -> None:
    """`events.watch` (what `mina process` follows instead of polling): after commit, in order."""
    from mina import conversations, events

    got: list[dict[str, Any]] = []

    def broken(_messages: Any) -> None:
        raise RuntimeError("an observer's bug")

    stops = [events.watch(broken), events.watch(got.extend)]
    try:
        with session_scope() as s:
            conv, _ = conversations.create(s, "watched")
            cid = conv.id
            assert got == []  # not before the commit
        assert [m["type"] for m in got] == ["conversation_created"]
        with pytest.raises(RuntimeError), session_scope() as s:
            events.record(s, cid, "chunk_received", {"index": 0})
            raise RuntimeError("rolled back")
        with session_scope() as s:  # the broken watcher did not stop this commit
            events.record(s, cid, "chunk_received", {"index": 1})
    finally:
        for stop in stops:
            stop()
    assert [m["payload"].get("index") for m in got[1:]] == [1]
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Event.conversation_id == cid)) == 2


def test_a_conversation_locked_for_update_is_not_selected_again_by_record(clean_db: str) -> None:
    """`events.lock` (FOR UPDATE) stands for `record`'s own FOR KEY SHARE lock: one SELECT of the
    conversation in the transaction, and another writer still waits for the commit."""
    from sqlalchemy import event as sa_event

    from mina import conversations, events
    from mina.db import get_engine

    with session_scope() as s:
        conv, _token = conversations.create(s, "locked")
        cid = conv.id
    selects: list[str] = []

    def count(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM conversation" in statement:
            selects.append(statement)

    second: dict[str, Any] = {}
    committed_first = threading.Event()

    def writer() -> None:
        with session_scope() as s:
            second["id"] = events.record(s, cid, "second").id
            second["after_first_commit"] = committed_first.is_set()

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope() as s:
            locked = events.lock(s, cid)
            assert locked is not None and locked.id == cid
            first = events.record(s, cid, "first").id
            events.record(s, cid, "again")
            assert len(selects) == 1, selects
            # SQLite has no row locks (its BEGIN IMMEDIATE orders the writers instead).
            assert "FOR UPDATE" in selects[0] or engine.dialect.name == "sqlite", selects
            thread = threading.Thread(target=writer)
            thread.start()
            thread.join(timeout=1.0)
            assert thread.is_alive()  # waiting for our lock
            committed_first.set()
        with session_scope() as s:
            assert events.lock(s, "no-such-conversation") is None
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    thread.join(timeout=30)
    assert second["after_first_commit"] is True and second["id"] > first

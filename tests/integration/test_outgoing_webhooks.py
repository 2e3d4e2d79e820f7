"""Outgoing webhooks (issue 22, docs/webhooks.md): signed, at least once, in order per
conversation, paused on failure, replayable, repaired by the scheduler's job.

Real PostgreSQL, Redis and `dramatiq workers.actors` subprocesses (the tests marked `embedded`
run again on SQLite with the in-process workers of `mina dev`); the receiver is a real HTTP
server on 127.0.0.1 in this process that verifies every signature with the `standardwebhooks`
package, and can fail, hang past the timeout, answer 410, go down and come back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from standardwebhooks import Webhook, WebhookVerificationError

from mina import events
from mina.db import session_scope, utcnow
from mina.models import Event
from mina.outbound import repair
from mina.outbound.models import DEAD, DELIVERED, SENDING, Delivery, Subscription
from tests.conftest import REDIS_URL
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.stack import OPERATOR, bearer, wait_for

BASE = "/api/operator/webhooks"


@dataclass
class Hit:
    id: str
    body: dict[str, Any]
    answer: int


@dataclass
class Receiver:
    """A webhook receiver. `mode`: ok, fail (500), gone (410), hang (sleeps `hang` seconds),
    flaky (500 for the first try of each id, then 200)."""

    secret: str = ""
    mode: str = "ok"
    hang: float = 3.0
    hits: list[Hit] = field(default_factory=list)
    forged: int = 0
    port: int = 0
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    body = Webhook(receiver.secret).verify(raw, dict(self.headers.items()))
                except WebhookVerificationError:
                    with receiver.lock:
                        receiver.forged += 1
                    self._answer(400)
                    return
                msg_id = self.headers["webhook-id"]
                with receiver.lock:
                    seen = any(h.id == msg_id for h in receiver.hits)
                    mode = receiver.mode
                if mode == "hang":
                    time.sleep(receiver.hang)
                # a hung answer comes after the sender gave up: never counted as accepted
                answer = {"ok": 200, "fail": 500, "gone": 410, "hang": 599}.get(mode, 200)
                if mode == "flaky":
                    answer = 200 if seen else 500
                with receiver.lock:
                    receiver.hits.append(Hit(msg_id, body, answer))
                self._answer(answer)

            def _answer(self, status: int) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender timed out and went away

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.answer == 200]

    def accepted_ids(self) -> set[int]:
        return {int(h.id) for h in self.accepted()}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def no_subscriptions(clean_db: str) -> Iterator[None]:
    """None before (clean_db truncates them too) and none after, so no later test's events are
    sent to this test's receivers."""
    yield
    # The workers may still be sending to them: the cascade to webhook_outbox can meet a
    # sender's row locks in the other order, and PostgreSQL breaks that deadlock by aborting
    # one side. The delete is tried again, as a client would retry the API's 503.
    for attempt in range(5):
        try:
            with session_scope() as s:
                s.execute(delete(Subscription))
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2)


def subscribe(client: Any, receiver: Receiver, **options: Any) -> dict[str, Any]:
    body = {
        "url": receiver.url,
        "event_types": ["*"],
        "retry_min_seconds": 0.05,
        "retry_max_seconds": 0.3,
        **options,
    }
    r = client.post(f"{BASE}/subscriptions", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.get_json()
    out: dict[str, Any] = r.get_json()
    receiver.secret = out["secret"]
    return out


def conversation(client: Any) -> str:
    r = client.post("/api/conversations", json={"title": "webhooks"})
    assert r.status_code == 201
    return str(r.get_json()["id"])


def record(cid: str, n: int, type_: str = "chunk_received") -> list[int]:
    ids = []
    for i in range(n):
        with session_scope() as s:
            ids.append(events.record(s, cid, type_, {"index": i}).id)
    return ids


def sub_state(client: Any, sid: str) -> dict[str, Any]:
    r = client.get(f"{BASE}/subscriptions/{sid}", headers=OPERATOR)
    assert r.status_code == 200
    out: dict[str, Any] = r.get_json()
    return out


def rows(sid: str) -> list[Delivery]:
    with session_scope() as s:
        q = select(Delivery).where(Delivery.subscription_id == sid).order_by(Delivery.event_id)
        return list(s.scalars(q))


@pytest.mark.embedded
def test_signed_at_least_once_in_order_per_conversation(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=4)
    receiver.mode = "flaky"  # every event fails once, then goes through
    sub = subscribe(client, receiver, max_concurrency=4)
    convs = [conversation(client) for _ in range(3)]
    sent: dict[str, list[int]] = {cid: [] for cid in convs}
    for _ in range(3):  # interleaved across conversations
        for cid in convs:
            sent[cid] += record(cid, 2)
    every = {i for ids in sent.values() for i in ids}
    wait_for(lambda: every <= receiver.accepted_ids(), timeout=60)
    assert receiver.forged == 0
    by_id: dict[str, list[Hit]] = {}
    for h in receiver.hits:
        by_id.setdefault(h.id, []).append(h)
    for msg_id, hits in by_id.items():
        assert len(hits) >= 2, f"{msg_id} was not retried after its 500"
        assert all(h.body == hits[0].body for h in hits), "a retry carried another body"
        assert hits[0].body["id"] == int(msg_id)
    for cid, ids in sent.items():
        got = [int(h.id) for h in receiver.accepted() if h.body["conversation_id"] == cid]
        got = [i for i in got if i in ids]
        assert got == sorted(ids), f"conversation {cid}: accepted out of order: {got}"

    def delivered() -> list[Delivery]:  # the outcome is recorded just after the answer
        mine = [r for r in rows(sub["id"]) if r.event_id in every]
        return mine if {r.status for r in mine} == {DELIVERED} else []

    wait_for(delivered, timeout=10)
    assert sub_state(client, sub["id"])["deliveries"][DELIVERED] >= len(every)
    assert all(r.attempts == 2 for r in delivered())


def test_event_types_filter_and_the_conversations_room_ids(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=2)
    subscribe(client, receiver, event_types=["chunk_failed"])
    cid = conversation(client)
    record(cid, 2, "chunk_received")
    failed = record(cid, 1, "chunk_failed")
    wait_for(lambda: set(failed) <= receiver.accepted_ids(), timeout=30)
    time.sleep(1.0)
    assert {h.body["type"] for h in receiver.hits} == {"chunk_failed"}
    with session_scope() as s:
        ev = s.get(Event, failed[0])
        assert ev is not None
        assert receiver.accepted()[0].body == json.loads(json.dumps(events.as_message(ev)))


@pytest.mark.embedded
def test_consecutive_failures_pause_then_resume_delivers_everything(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=2)
    receiver.mode = "fail"
    sub = subscribe(client, receiver, pause_after_failures=3, max_attempts=50)
    cid = conversation(client)
    ids = record(cid, 3)
    state = wait_for(
        lambda: (s := sub_state(client, sub["id"]))["status"] == "paused" and s, timeout=30
    )
    assert "3 failures in a row" in state["paused_reason"] and "HTTP 500" in state["paused_reason"]
    time.sleep(1.0)
    tried = len(receiver.hits)
    time.sleep(1.0)
    assert len(receiver.hits) == tried, "a paused subscription was still sent to"
    assert receiver.accepted_ids() == set()
    receiver.mode = "ok"
    r = client.post(f"{BASE}/subscriptions/{sub['id']}/resume", headers=OPERATOR)
    assert r.status_code == 200 and r.get_json()["status"] == "active"
    wait_for(lambda: set(ids) <= receiver.accepted_ids(), timeout=30)
    assert [int(h.id) for h in receiver.accepted() if int(h.id) in ids] == ids


def test_410_pauses_at_once(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=2)
    receiver.mode = "gone"
    sub = subscribe(client, receiver)
    record(conversation(client), 2)
    state = wait_for(
        lambda: (s := sub_state(client, sub["id"]))["status"] == "paused" and s, timeout=30
    )
    assert "410" in state["paused_reason"]
    assert len(receiver.hits) == 1  # the second event waited behind the first, then the pause
    listed = client.get(f"{BASE}/subscriptions", headers=OPERATOR).get_json()["subscriptions"]
    assert [s["status"] for s in listed] == ["paused"]


def test_timeouts_become_a_dead_letter_that_an_operator_retries(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=2)
    receiver.mode, receiver.hang = "hang", 2.0
    sub = subscribe(
        client, receiver, timeout_seconds=0.5, max_attempts=2, event_types=["chunk_received"]
    )
    cid = conversation(client)
    first, second = record(cid, 2)

    def dead() -> list[dict[str, Any]]:
        r = client.get(f"{BASE}/deliveries?status=dead", headers=OPERATOR)
        assert r.status_code == 200
        found: list[dict[str, Any]] = r.get_json()["deliveries"]
        return found

    letters = wait_for(lambda: len(d := dead()) == 2 and d, timeout=60)
    assert {d["event_id"] for d in letters} == {first, second}
    assert all("timed out after 0.5s" in d["last_error"] for d in letters)
    assert all(d["attempts"] == 2 for d in letters)
    receiver.mode = "ok"
    for d in letters:
        r = client.post(f"{BASE}/deliveries/{d['id']}/retry", headers=OPERATOR)
        assert r.status_code == 202 and r.get_json()["status"] == "pending"
    wait_for(lambda: {first, second} <= receiver.accepted_ids(), timeout=30)
    wait_for(lambda: {r.status for r in rows(sub["id"])} == {DELIVERED}, timeout=10)
    r = client.post(f"{BASE}/deliveries/{letters[0]['id']}/retry", headers=OPERATOR)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "conflict"


@pytest.mark.embedded
def test_replay_from_a_cursor_sends_the_same_ids_again(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=2)
    sub = subscribe(client, receiver)
    cid = conversation(client)
    ids = record(cid, 4)
    wait_for(lambda: set(ids) <= receiver.accepted_ids(), timeout=30)
    # a row still `sending` (answered, outcome not yet recorded) is not sent again by a replay
    wait_for(lambda: {r.status for r in rows(sub["id"])} == {DELIVERED}, timeout=10)
    before = len(receiver.accepted())
    r = client.post(f"{BASE}/subscriptions/{sub['id']}/replay?after={ids[1]}", headers=OPERATOR)
    assert r.status_code == 202 and r.get_json() == {"replayed": 2}
    wait_for(lambda: len(receiver.accepted()) >= before + 2, timeout=30)
    again = [int(h.id) for h in receiver.accepted()[before:]]
    assert again == ids[2:]


def test_receiver_down_then_restarted_gets_everything(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    workers(threads=2)
    sub = subscribe(client, receiver, max_attempts=50, pause_after_failures=1000)
    receiver.stop()
    cid = conversation(client)
    ids = record(cid, 3)
    wait_for(lambda: any(r.last_error for r in rows(sub["id"])), timeout=30)
    assert "ConnectError" in next(r.last_error for r in rows(sub["id"]) if r.last_error)
    receiver.start()  # the same port
    wait_for(lambda: set(ids) <= receiver.accepted_ids(), timeout=30)
    assert [int(h.id) for h in receiver.accepted() if int(h.id) in ids] == ids


def test_the_scheduler_job_repairs_lost_messages_and_dead_senders(
    client: Any, workers: Any, receiver: Receiver, no_subscriptions: None
) -> None:
    from workers.outbound import sender

    sub = subscribe(client, receiver)
    cid = conversation(client)
    ids = record(cid, 3)  # no worker runs: the wake-ups are lost with the flushed queue
    time.sleep(0.5)
    redis.Redis.from_url(REDIS_URL).flushdb()
    with session_scope() as s:  # and one row left `sending` by a sender that died
        s.execute(update(Subscription).where(Subscription.id == sub["id"]).values(cursor=ids[0]))
        s.add(Delivery(subscription_id=sub["id"], event_id=ids[0], stream=cid))
        s.flush()
        s.execute(
            update(Delivery)
            .where(Delivery.event_id == ids[0])
            .values(status=SENDING, attempts=1, lease_until=utcnow())
        )
    time.sleep(0.1)
    woken = repair.repair(sender, grace=0.0)
    # the one taken back from its dead sender, and the first of the two fanned out now (the
    # second follows it down the stream)
    assert woken == 2
    workers(threads=2)
    wait_for(lambda: set(ids) <= receiver.accepted_ids(), timeout=30)
    wait_for(lambda: [r.status for r in rows(sub["id"])] == [DELIVERED] * 3, timeout=10)
    assert repair.repair(sender, grace=0.0) == 0
    with session_scope() as s:  # a week later the delivered rows are pruned
        s.execute(
            update(Delivery)
            .where(Delivery.subscription_id == sub["id"], Delivery.event_id != ids[0])
            .values(delivered_at=utcnow() - timedelta(days=repair.KEEP_DELIVERED_DAYS, hours=1))
        )
    assert repair.repair(sender, grace=0.0) == 2
    assert [r.event_id for r in rows(sub["id"])] == [ids[0]]


@pytest.mark.embedded
def test_bad_input_is_a_clear_400(client: Any, no_subscriptions: None) -> None:
    def post(body: dict[str, Any]) -> Any:
        return client.post(f"{BASE}/subscriptions", json=body, headers=OPERATOR)

    good = {"url": "http://127.0.0.1:9/hooks", "event_types": ["chunk_failed"]}
    for body, words in [
        ({**good, "url": "ftp://127.0.0.1/x"}, "http"),
        ({**good, "url": "http:///nohost"}, "host"),
        ({**good, "event_types": []}, "event_types"),
        ({**good, "event_types": ["Not A Type"]}, "event type"),
        ({**good, "secret": "whsec_not*base64*at*all"}, "secret"),
        ({**good, "secret": "whsec_c2hvcnQ=padpadpadpad"}, "secret"),
        ({**good, "max_concurrency": 0}, "max_concurrency"),
        ({**good, "retry_min_seconds": 10, "retry_max_seconds": 1}, "retry_min_seconds"),
        ({**good, "colour": "red"}, "colour"),
    ]:
        r = post(body)
        assert r.status_code == 400, (body, r.get_json())
        assert words in r.get_json()["error"]["message"], (body, r.get_json())
    for path in ("subscriptions/nope", "subscriptions/nope/pause"):
        method = client.get if path.endswith("nope") else client.post
        r = method(f"{BASE}/{path}", headers=OPERATOR)
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = client.post(f"{BASE}/subscriptions/nope/replay?after=-1", headers=OPERATOR)
    assert r.status_code == 400
    r = client.post(f"{BASE}/deliveries/99999999999999999999999/retry", headers=OPERATOR)
    assert r.status_code == 404
    r = client.get(f"{BASE}/subscriptions")
    assert r.status_code == 401
    r = client.get(f"{BASE}/subscriptions", headers=bearer("not-the-operator"))
    assert r.status_code == 403
    created = post(good)
    assert created.status_code == 201 and created.get_json()["secret"].startswith("whsec_")
    sid = created.get_json()["id"]
    listed = client.get(f"{BASE}/subscriptions", headers=OPERATOR).get_json()["subscriptions"]
    assert [s["id"] for s in listed] == [sid] and "secret" not in listed[0]
    assert client.delete(f"{BASE}/subscriptions/{sid}", headers=OPERATOR).status_code == 204
    assert client.get(f"{BASE}/subscriptions/{sid}", headers=OPERATOR).status_code == 404


# --- the pipeline does not wait for receivers ------------------------------------------------

FAST = {"transcriber": "simulated", "sim_latency_seconds": 0.02, "language_provider": "simulated"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("webhooks"), minutes=0.5, chunk_seconds=15)


def test_finish_to_reveal_is_unchanged_while_the_receiver_is_down(
    client: Any,
    env: Any,
    workers: Any,
    receiver: Receiver,
    no_subscriptions: None,
    speech: Meeting,
    tmp_path: Path,
) -> None:
    env(**FAST)
    workers(threads=2)
    slow = Receiver(mode="hang", hang=5.0)
    slow.start()
    try:
        hanging = subscribe(client, slow, timeout_seconds=4.0, max_attempts=50)
        down = subscribe(client, receiver, max_attempts=50, pause_after_failures=1000)
        receiver.stop()
        r = client.post("/api/conversations", json={"title": "down"})
        cid, auth = r.get_json()["id"], bearer(r.get_json()["token"])
        for index, path in enumerate(speech.chunks):
            with path.open("rb") as fh:
                r = client.post(
                    f"/api/conversations/{cid}/chunks",
                    data={"index": str(index), "file": (fh, path.name)},
                    headers=auth,
                    content_type="multipart/form-data",
                )
            assert r.status_code == 202
        assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code

        def revealed() -> bool:
            r = client.get(f"/api/conversations/{cid}", headers=auth).get_json()
            return bool(r["processing_status"] in ("ready", "partial"))

        wait_for(revealed, timeout=90)
        with session_scope() as s:
            types = [e.type for e in events.replay(s, cid)]
        assert types.count("post_transcription_reveal") == 1
        assert receiver.accepted_ids() == set()
        assert not any(r.status == DELIVERED for r in rows(down["id"]))
        receiver.start()
        reveal_id = max(e.id for e in events_of(cid) if e.type == "post_transcription_reveal")
        wait_for(lambda: reveal_id in receiver.accepted_ids(), timeout=60)
        assert rows(hanging["id"]) and all(r.status != DEAD for r in rows(hanging["id"]))
    finally:
        slow.stop()


def events_of(cid: str) -> list[Event]:
    with session_scope() as s:
        return events.replay(s, cid)

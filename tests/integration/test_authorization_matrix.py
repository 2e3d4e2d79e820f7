"""The authorization matrix (issue 19): every route by every kind of caller, over real HTTP.

The routes come from the live app's url_map, never from a list kept here: a route added without
an entry in MATRIX fails `test_every_route_has_a_matrix_entry`. Callers: no token, another
conversation's participant token, this conversation's participant token, the operator token, and
a forged token (as long as a real one, never issued). The token goes in the Authorization
header, or in `?token=` for the participant page (its link carries it).

Each refusal (401, 403; the pages' 403 and the dashboard's redirect to its login) answers as
documented, with a JSON error on the API, and leaves nothing behind: every table's row count and
the storage's blobs are what they were. Socket.IO joins (a real python-socketio client against
the real server), the SSE stream and incoming provider webhook signatures (missing, wrong,
another chunk's, replayed) are checked the same way, and the server stays healthy after it all.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from sqlalchemy import func, select, text
from werkzeug.serving import make_server

from mina.db import session_scope
from mina.models import WebhookDelivery
from mina.webhooks import token as webhook_token
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.stack import TABLES

pytestmark = pytest.mark.embedded

SECRET = "whsec-matrix"
CALLERS = ("none", "other", "participant", "operator", "forged", "operator cookie")
Row = tuple[int, int, int, int, int, int]
PUBLIC: Row = (200,) * 6


def participants(allowed: int, cookie: int = 401) -> Row:
    """A participant's route: 401 without a token, 403 for one that does not open it. The
    dashboard's session cookie opens only the reading routes the dashboard uses, never a write
    of the participant's (no cross-site request can upload, finish or read a status with it)."""
    return (401, 403, allowed, allowed, 403, cookie)


def operators(allowed: int) -> Row:
    """An operator's route: 403 for any token but the operator's; the session cookie opens it
    (SameSite=Lax: a cross-site POST does not carry it)."""
    return (401, 403, 403, allowed, 403, allowed)


# The expected status per route and caller, in the order of CALLERS. "METHOD rule" as the app's
# url_map spells it. A participant's route answers 401 without a token and 403 for a token that
# does not open this conversation; an operator's route answers 403 to any token but the
# operator's. What the allowed callers get (404, 409, ...) is what the route answers the fixture's
# fresh conversation: they got past authorization.
MATRIX: dict[str, Row] = {
    # participant API: the conversation's token or the operator's
    "POST /api/conversations": (201,) * 6,  # open unless create_requires_operator
    "GET /api/conversations/<conversation_id>": participants(200),
    "POST /api/conversations/<conversation_id>/chunks": participants(202),
    "POST /api/conversations/<conversation_id>/chunks/presign": participants(400),
    "POST /api/conversations/<conversation_id>/chunks/confirm": participants(400),
    "POST /api/conversations/<conversation_id>/finish": participants(202),
    "GET /api/conversations/<conversation_id>/transcript": participants(200, 200),
    "GET /api/conversations/<conversation_id>/events": participants(200),
    "GET /api/conversations/<conversation_id>/events/stream": participants(200, 200),
    "GET /api/conversations/<conversation_id>/analytics": participants(409, 409),
    "GET /api/conversations/<conversation_id>/tasks": participants(409, 409),
    "GET /api/conversations/<conversation_id>/summary": participants(409, 409),
    "GET /api/conversations/<conversation_id>/refinement": participants(409, 409),
    "GET /api/conversations/<conversation_id>/audio": participants(409, 409),
    "GET /api/conversations/<conversation_id>/notes": participants(200, 200),
    "GET /api/conversations/<conversation_id>/speakers": participants(409, 409),
    "PUT /api/conversations/<conversation_id>/speakers/<speaker>": participants(409, 409),
    "GET /api/search": participants(200, 200),  # ?conversation= this one
    # operators only
    "DELETE /api/conversations/<conversation_id>": operators(200),
    "GET /api/operator/conversations": operators(200),
    "GET /api/operator/conversations/<conversation_id>": operators(200),
    "POST /api/operator/conversations/<conversation_id>/finish": operators(202),
    "POST /api/operator/conversations/<conversation_id>/retry": operators(409),
    "GET /api/operator/stats": operators(200),
    "GET /api/operator/webhooks/deliveries": operators(200),
    "POST /api/operator/webhooks/deliveries/<delivery_id>/retry": operators(404),
    "POST /api/operator/webhooks/subscriptions": operators(201),
    "GET /api/operator/webhooks/subscriptions": operators(200),
    "GET /api/operator/webhooks/subscriptions/<subscription_id>": operators(404),
    "DELETE /api/operator/webhooks/subscriptions/<subscription_id>": operators(404),
    "POST /api/operator/webhooks/subscriptions/<subscription_id>/pause": operators(404),
    "POST /api/operator/webhooks/subscriptions/<subscription_id>/replay": operators(404),
    "POST /api/operator/webhooks/subscriptions/<subscription_id>/resume": operators(404),
    "GET /api/people": operators(200),
    "DELETE /api/people/<person_id>": operators(404),
    # pages: the participant's link carries its token; the dashboard signs operators in
    "GET /c/<conversation_id>": (403, 403, 200, 200, 403, 403),
    "GET /dashboard": (302, 403, 403, 200, 403, 200),
    "GET /login": PUBLIC,
    "POST /login": (401,) * 6,  # no csrf field: the form is refused whoever posts it
    "POST /logout": (302,) * 6,
    # provider webhooks: authenticated by their HMAC header, never by a bearer token
    "POST /webhooks/transcription/<provider>": (401,) * 6,
    # public
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /openapi.json": PUBLIC,
    "GET /apidoc/openapi.json": PUBLIC,
    "GET /apidoc/redoc/": PUBLIC,
    "GET /apidoc/scalar/": PUBLIC,
    "GET /apidoc/swagger/": PUBLIC,
    "GET /apidoc/swagger/oauth2-redirect.html/": PUBLIC,
    "GET /static/<path:filename>": PUBLIC,
}
REFUSED = {401, 403}


def routes(app: Any) -> list[str]:
    found = set()
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.add(f"{method} {rule.rule}")
    return sorted(found)


# --- the live server and its state ----------------------------------------------------------


@pytest.fixture(scope="module")
def ogg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("matrix") / "tone.ogg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
         "-c:a", "libopus", "-b:a", "24k", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture
def live(env: Any, clean_db: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    from api import create_app
    from mina.settings import get_settings

    env(storage_url=tmp_path / "blobs", webhook_secret=SECRET, sse_max_seconds=1)
    app = create_app(get_settings())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()


def create(url: str) -> tuple[str, str]:
    r = requests.post(f"{url}/api/conversations", json={"title": "matrix"}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def snapshot(app: Any) -> tuple[dict[str, int], list[str]]:
    """Every table's row count and every blob: what a refusal must leave as it was."""
    with session_scope() as s:
        rows = {t: int(s.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in TABLES}
    storage = app.extensions["mina"].storage
    return rows, sorted(b.key for b in storage.list(""))


@dataclass
class State:
    url: str
    cid: str
    tokens: dict[str, str | None]
    ogg: bytes


def signed_in(url: str) -> requests.Session:
    """A browser session signed in on the dashboard's login form: the operator's cookie."""
    browser = requests.Session()
    form = browser.get(f"{url}/login", timeout=30).text
    found = re.search(r'name="csrf" value="([^"]+)"', form)
    assert found, form[:300]
    r = browser.post(
        f"{url}/login",
        data={"csrf": found.group(1), "token": OPERATOR_TOKEN, "next": "/dashboard"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302 and browser.cookies, r.text[:300]
    return browser


def request_for(route: str, caller: str, st: State) -> dict[str, Any]:
    """Arguments of requests.request for `route` as `caller`: a valid request in every other
    way, so that authorization is all that differs."""
    method, rule = route.split(" ", 1)
    path = (
        rule.replace("<conversation_id>", st.cid)
        .replace("<speaker>", "S1")
        .replace("<provider>", "assemblyai")
        .replace("<path:filename>", "css/mina.css")
        .replace("<delivery_id>", "12345")
        .replace("<subscription_id>", "0" * 32)
        .replace("<person_id>", "0" * 32)
    )
    assert "<" not in path, f"no value for a parameter of {rule}: add one here"
    token = st.tokens[caller]
    kw: dict[str, Any] = {"method": method, "url": st.url + path, "headers": {}, "params": {}}
    if token is not None:
        if rule.startswith("/c/"):
            kw["params"]["token"] = token
        else:
            kw["headers"]["Authorization"] = f"Bearer {token}"
    if rule.endswith("/chunks"):
        kw["files"] = {"file": ("c.ogg", io.BytesIO(st.ogg), "audio/ogg")}
        kw["data"] = {"index": "0"}
    elif rule.endswith("/presign"):
        kw["json"] = {"index": 0, "size": len(st.ogg), "content_type": "audio/ogg"}
    elif rule.endswith("/confirm"):
        key = f"conversations/{st.cid}/staging/000000/{len(st.ogg)}-0123456789abcdef.ogg"
        kw["json"] = {"index": 0, "key": key}
    elif rule.endswith("/speakers/<speaker>"):
        kw["json"] = {"name": "Ann"}
    elif rule == "/api/search":
        kw["params"].update({"q": "hello", "conversation": st.cid})
    elif rule == "/api/operator/webhooks/subscriptions" and method == "POST":
        kw["json"] = {"url": "https://example.com/hook", "event_types": ["chunk_transcribed"]}
    elif rule.endswith("/replay"):
        kw["params"]["after"] = "0"
    elif rule.startswith("/webhooks/"):
        kw["params"]["chunk"] = "c-1"
        kw["data"] = json.dumps({"transcript_id": "t-1", "status": "completed"})
        kw["headers"]["Content-Type"] = "application/json"
    elif method == "POST" and rule not in ("/login", "/logout"):
        kw["json"] = {}
    return kw


def test_every_route_has_a_matrix_entry(app: Any) -> None:
    missing = [r for r in routes(app) if r not in MATRIX]
    gone = [r for r in MATRIX if r not in routes(app)]
    assert missing == [], f"routes without an authorization matrix entry: {missing}"
    assert gone == [], f"matrix entries for routes that no longer exist: {gone}"


def test_the_matrix(live: tuple[str, Any], ogg: bytes) -> None:
    url, app = live
    browser = signed_in(url)
    wrong: list[str] = []
    for route in routes(app):
        for n, caller in enumerate(CALLERS):
            cid, own = create(url)  # a fresh conversation per request: some routes change it
            _, other = create(url)
            tokens = {
                "none": None,
                "other": other,
                "participant": own,
                "operator": OPERATOR_TOKEN,
                "forged": secrets.token_urlsafe(24),  # as long as a real token
                "operator cookie": None,  # the session's cookie, no token
            }
            st = State(url, cid, tokens, ogg)
            before = snapshot(app)
            send = browser.request if caller == "operator cookie" else requests.request
            r = send(
                **request_for(route, caller, st), timeout=30, allow_redirects=False, stream=True
            )
            status, ctype = r.status_code, r.headers.get("Content-Type", "")
            body = r.content if not ctype.startswith("text/event-stream") else b""
            r.close()
            expected = MATRIX[route][n]
            where = f"{route} as {caller}"
            if status != expected:
                wrong.append(f"{where}: {status}, expected {expected}: {body[:160]!r}")
                continue
            if status not in REFUSED and not (status == 302 and route == "GET /dashboard"):
                continue
            if route.split(" ", 1)[1].startswith(("/api/", "/webhooks/")):
                error = json.loads(body).get("error", {})
                if not (error.get("code") and error.get("message")):
                    wrong.append(f"{where}: not a JSON error: {body[:160]!r}")
            if snapshot(app) != before:
                wrong.append(f"{where}: refused but rows or blobs changed")
    assert wrong == [], "\n".join(wrong)
    assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("Bearer", 401),  # no token after the scheme
        ("Basic dXNlcjpwYXNz", 401),  # another scheme
        ("Bearer " + "x" * 8000, 403),  # a huge token
        ("Bearer \u00e9t\u00e9", 403),  # non-ASCII (latin-1 on the wire): was a 500
        (f"Bearer {OPERATOR_TOKEN}x", 403),  # the operator's with a byte more
        (f"Bearer {OPERATOR_TOKEN[:-1]}", 403),  # and with one less
    ],
)
def test_forged_authorization_headers_are_refused(
    live: tuple[str, Any], header: str, status: int
) -> None:
    url, app = live
    cid, _ = create(url)
    before = snapshot(app)
    for path in (
        f"/api/conversations/{cid}",
        "/api/operator/stats",
        f"/api/conversations/{cid}/finish",
    ):
        method = "POST" if path.endswith("/finish") else "GET"
        r = requests.request(
            method, url + path, headers={"Authorization": header.encode("latin-1")}, timeout=30
        )  # type: ignore[arg-type]
        assert r.status_code == status, (path, header[:20], r.status_code, r.text[:200])
        assert r.json()["error"]["code"] in ("unauthorized", "forbidden")
    r = requests.get(f"{url}/c/{cid}", params={"token": "\u00e9t\u00e9"}, timeout=30)
    assert r.status_code == 403
    assert snapshot(app) == before
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_creating_a_conversation_can_require_the_operator(
    env: Any, clean_db: str, tmp_path: Path
) -> None:
    from api import create_app
    from mina.settings import get_settings

    env(storage_url=tmp_path / "blobs", create_requires_operator="true")
    client = create_app(get_settings()).test_client()
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer forged-token"}, 403),
        ({"Authorization": f"Bearer {OPERATOR_TOKEN}"}, 201),
    ):
        r = client.post("/api/conversations", json={"title": "x"}, headers=headers)
        assert r.status_code == status, r.get_json()
    with session_scope() as s:
        from mina.models import Conversation

        assert s.scalar(select(func.count()).select_from(Conversation)) == 1


# --- Socket.IO joins ----------------------------------------------------------------------


def join(url: str, payload: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    got: list[tuple[str, Any]] = []
    sio = socketio.Client(reconnection=False)
    sio.on("*", lambda event, data=None: got.append((event, data)))
    sio.connect(url, wait_timeout=10)
    try:
        ack = sio.call("join", payload, timeout=30)
    finally:
        sio.disconnect()
    return ack, got


@pytest.mark.parametrize(
    ("caller", "room", "expected"),
    [
        ("none", "conversation", "unauthorized"),
        ("other", "conversation", "forbidden"),
        ("participant", "conversation", None),
        ("operator", "conversation", None),
        ("forged", "conversation", "forbidden"),
        ("none", "operators", "unauthorized"),
        ("other", "operators", "forbidden"),
        ("participant", "operators", "forbidden"),
        ("operator", "operators", None),
        ("forged", "operators", "forbidden"),
        ("non-ascii", "operators", "forbidden"),
    ],
)
def test_socketio_joins(
    live: tuple[str, Any], caller: str, room: str, expected: str | None
) -> None:
    url, app = live
    cid, own = create(url)
    _, other = create(url)
    tokens = {
        "none": None,
        "other": other,
        "participant": own,
        "operator": OPERATOR_TOKEN,
        "forged": secrets.token_urlsafe(24),
        "non-ascii": "\u00e9t\u00e9",
    }
    payload: dict[str, Any] = (
        {"conversation_id": cid} if room == "conversation" else {"room": "operators"}
    )
    if tokens[caller] is not None:
        payload["token"] = tokens[caller]
    before = snapshot(app)
    ack, got = join(url, payload)
    names = [event for event, _ in got]
    if expected is None:
        assert ack["ok"] is True and "joined" in names, (ack, names)
        return
    assert ack == {"ok": False, "error": {"code": expected, "message": ack["error"]["message"]}}
    assert names == ["join_error"], names  # no room, no replayed event
    assert got[0][1]["code"] == expected
    assert snapshot(app) == before
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_refused_socket_hears_nothing_of_the_conversation(
    live: tuple[str, Any], ogg: bytes
) -> None:
    url, _ = live
    cid, own = create(url)
    _, other = create(url)
    heard: list[str] = []
    joined: list[str] = []
    intruder = socketio.Client(reconnection=False)
    intruder.on("*", lambda event, data=None: heard.append(event))
    member = socketio.Client(reconnection=False)
    member.on("chunk_received", lambda data=None: joined.append("chunk_received"))
    intruder.connect(url, wait_timeout=10)
    member.connect(url, wait_timeout=10)
    try:
        assert (
            intruder.call("join", {"conversation_id": cid, "token": other}, timeout=30)["ok"]
            is False
        )
        assert member.call("join", {"conversation_id": cid, "token": own}, timeout=30)["ok"]
        r = requests.post(
            f"{url}/api/conversations/{cid}/chunks",
            headers={"Authorization": f"Bearer {own}"},
            files={"file": ("c.ogg", io.BytesIO(ogg), "audio/ogg")},
            data={"index": "0"},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        from tests.fixtures.stack import wait_for

        wait_for(lambda: joined, timeout=30)  # the member heard it live
    finally:
        intruder.disconnect()
        member.disconnect()
    assert heard == ["join_error"], heard


# --- SSE ------------------------------------------------------------------------------------


def test_sse_accepts_the_token_in_the_query_too_and_refuses_the_rest(
    live: tuple[str, Any],
) -> None:
    url, app = live
    cid, own = create(url)
    _, other = create(url)
    stream = f"{url}/api/conversations/{cid}/events/stream"
    for params, status in (
        ({}, 401),
        ({"token": other}, 403),
        ({"token": secrets.token_urlsafe(24)}, 403),
        ({"token": own}, 200),
        ({"token": OPERATOR_TOKEN}, 200),
    ):
        before = snapshot(app)
        r = requests.get(stream, params=params, timeout=30, stream=True)
        try:
            assert r.status_code == status, (params, r.status_code)
            if status == 200:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                first = next(r.iter_lines())
                assert first.startswith(b"retry:")
            else:
                assert r.json()["error"]["code"] in ("unauthorized", "forbidden")
                assert snapshot(app) == before
        finally:
            r.close()


# --- incoming provider webhooks -------------------------------------------------------------


def deliveries() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


def test_webhook_signatures(live: tuple[str, Any]) -> None:
    url, app = live
    hook = f"{url}/webhooks/transcription/assemblyai"
    body = json.dumps({"transcript_id": "t-matrix", "status": "completed"})
    mine, others = "chunk-a", "chunk-b"

    def post(chunk: str | None, header: str | None, provider_url: str = hook) -> Any:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["X-Mina-Webhook-Token"] = header
        params = {"chunk": chunk} if chunk is not None else {}
        return requests.post(provider_url, params=params, data=body, headers=headers, timeout=30)  # type: ignore[arg-type]

    right = webhook_token(SECRET, "assemblyai", mine)
    refusals = [
        ("missing header", post(mine, None), 401),
        ("missing chunk", post(None, right), 401),
        ("wrong token", post(mine, "0" * 64), 401),
        ("another chunk's token", post(mine, webhook_token(SECRET, "assemblyai", others)), 401),
        (
            "another secret's token",
            post(mine, webhook_token("not-the-secret", "assemblyai", mine)),
            401,
        ),
        ("the right token upper-cased", post(mine, right.upper()), 401),
        ("non-ASCII token", post(mine, "\u00e9" * 64), 401),  # was a 500
        ("another provider's URL", post(mine, right, f"{url}/webhooks/transcription/other"), 404),
    ]
    before = snapshot(app)
    for name, r, status in refusals:
        assert r.status_code == status, (name, r.status_code, r.text[:200])
        assert r.json()["error"]["code"] in ("unauthorized", "not_found"), name
    assert snapshot(app) == before and deliveries() == 0

    first = post(mine, right)
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    replayed = post(mine, right)
    assert replayed.status_code == 200 and replayed.json()["status"] == "duplicate", replayed.text
    assert deliveries() == 1  # the replay stored nothing
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_the_matrix_covers_every_documented_caller() -> None:
    assert all(len(v) == len(CALLERS) for v in MATRIX.values())
    # the participant's uploads and finish never open with the dashboard's cookie alone
    writes = [r for r in MATRIX if r.startswith("POST /api/conversations/")]
    assert len(writes) == 4 and all(MATRIX[r][5] == 401 for r in writes), writes
    statuses = {s for v in MATRIX.values() for s in v}
    assert statuses <= {200, 201, 202, 302, 400, 401, 403, 404, 409}, statuses

"""Bad input is a 400 with a JSON error, never a 500: NUL bytes and lone surrogates in any text
(path, query, form, JSON body, webhook, Socket.IO), and numbers out of their documented range.

PostgreSQL refuses NUL in text and bigint/datetime overflow, so each of these was a 500 once.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select
from werkzeug.serving import make_server

from mina.db import session_scope
from mina.models import Conversation, WebhookDelivery
from mina.webhooks import token
from tests.fixtures.stack import OPERATOR, bearer

pytestmark = pytest.mark.embedded

NUL_ID = "ab%00cd"
SECRET = "whsec-bad-input"


def conversations() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(Conversation)) or 0)


def assert_refused(r: Any, code: str = "invalid_text", status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    assert r.is_json, r.get_data(as_text=True)[:300]
    error = r.get_json()["error"]
    assert error["code"] == code and error["message"], error
    return error


def create(client: Any) -> tuple[str, dict[str, str]]:
    body = client.post("/api/conversations", json={"title": "ok"}).get_json()
    return body["id"], bearer(body["token"])


@pytest.mark.parametrize(
    "raw",
    [
        '{"title": "a\\u0000b"}',
        '{"title": "a\\ud800b"}',
        '{"a\\u0000": 1}',
        '{"title": ["\\udfff"]}',
    ],
)
def test_nul_and_lone_surrogates_in_a_json_body_are_400_and_create_nothing(
    client: Any, raw: str
) -> None:
    r = client.post("/api/conversations", data=raw, content_type="application/json")
    error = assert_refused(r)
    assert "NUL" in error["message"] and error["message"].startswith("body")
    assert conversations() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/conversations/{NUL_ID}"),
        ("GET", f"/api/conversations/{NUL_ID}/transcript"),
        ("GET", f"/api/conversations/{NUL_ID}/events"),
        ("GET", f"/api/conversations/{NUL_ID}/events/stream"),
        ("GET", f"/api/conversations/{NUL_ID}/analytics"),
        ("GET", f"/api/conversations/{NUL_ID}/audio"),
        ("POST", f"/api/conversations/{NUL_ID}/finish"),
        ("POST", f"/api/conversations/{NUL_ID}/chunks/confirm"),
        ("GET", f"/api/operator/conversations/{NUL_ID}"),
        ("POST", f"/api/operator/conversations/{NUL_ID}/retry"),
        ("GET", f"/c/{NUL_ID}?token=x"),
        ("GET", f"/no/such/{NUL_ID}"),
    ],
)
def test_a_nul_in_any_path_is_400(client: Any, method: str, path: str) -> None:
    error = assert_refused(client.open(path, method=method, headers=OPERATOR))
    assert error["message"].startswith("path")


@pytest.mark.parametrize(
    "query",
    [
        "cursor=a%00b",
        "status=recording%00",
        "token=x%00",
        "a%00=1",
        "cursor=%ED%A0%80",  # the UTF-8 bytes of a surrogate: decoded as U+FFFD, not refused
    ],
)
def test_bad_text_in_a_query_string_is_400(client: Any, query: str) -> None:
    r = client.get(f"/api/operator/conversations?{query}", headers=OPERATOR)
    if "%ED" in query:
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_cursor"
        return
    assert_refused(r)["message"].startswith("query parameter")


def test_a_nul_in_a_form_field_is_400_and_stores_no_chunk(client: Any) -> None:
    cid, auth = create(client)
    r = client.post(
        f"/api/conversations/{cid}/chunks",
        data={"index": "0\x00", "file": (io.BytesIO(b"RIFF"), "c.wav")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert_refused(r)["message"].startswith("form field 'index'")
    status = client.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert status["chunks"].get("total", 0) == 0


@pytest.mark.parametrize("field", ["transcript_id", "status"])
def test_a_nul_in_a_signed_webhook_body_is_400_and_stores_nothing(
    env: Any, clean_db: str, field: str
) -> None:
    from api import create_app
    from mina.settings import get_settings

    env(webhook_secret=SECRET)
    client = create_app(get_settings()).test_client()
    body = {"transcript_id": "t-1", "status": "completed", field: "a\u0000b"}
    r = client.post(
        "/webhooks/transcription/assemblyai?chunk=c-1",
        data=json.dumps(body),
        headers={"X-Mina-Webhook-Token": token(SECRET, "assemblyai", "c-1")},
        content_type="application/json",
    )
    assert_refused(r)["message"].startswith(f"body.{field}")
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    # the same delivery without the NUL is accepted: the token was right
    body[field] = "completed" if field == "status" else "t-1"
    ok = client.post(
        "/webhooks/transcription/assemblyai?chunk=c-1",
        data=json.dumps(body),
        headers={"X-Mina-Webhook-Token": token(SECRET, "assemblyai", "c-1")},
        content_type="application/json",
    )
    assert ok.status_code == 200, ok.get_json()


def test_a_body_nested_too_deeply_is_400(client: Any) -> None:
    r = client.post("/api/conversations", data="[" * 100_000, content_type="application/json")
    assert_refused(r, code="malformed_json")


def test_a_socketio_join_with_a_nul_is_refused(app: Any) -> None:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received: list[tuple[str, Any]] = []
    sio = socketio.Client(reconnection=False)
    sio.on("*", lambda event, data=None: received.append((event, data)))
    try:
        sio.connect(f"http://127.0.0.1:{server.server_port}", wait_timeout=10)
        ack = sio.call("join", {"conversation_id": "ab\x00cd"}, timeout=30)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_text", ack
        (refused,) = [d for e, d in received if e == "join_error"]
        assert refused["code"] == "invalid_text" and refused["conversation_id"] is None
    finally:
        sio.disconnect()
        server.shutdown()


@pytest.mark.parametrize(
    "query",
    [
        "stuck_seconds=1e12",
        "stuck_seconds=inf",
        "stuck_seconds=nan",
        "stuck_seconds=-1",
        "offset=1000000000000000000000000000000",
        "offset=-1",
        "limit=100000000000000000000",
    ],
)
def test_operator_list_numbers_out_of_range_are_400(client: Any, query: str) -> None:
    r = client.get(f"/api/operator/conversations?{query}", headers=OPERATOR)
    assert_refused(r, code="invalid_body")


def test_numbers_in_range_still_work(client: Any) -> None:
    r = client.get(
        "/api/operator/conversations?stuck_seconds=315360000&offset=10000000&stuck=true",
        headers=OPERATOR,
    )
    assert r.status_code == 200 and r.get_json()["conversations"] == []


def test_participant_numbers_out_of_range_are_400(client: Any) -> None:
    cid, auth = create(client)
    huge = 10**30
    assert_refused(
        client.get(f"/api/conversations/{cid}/events?after={huge}", headers=auth), "invalid_body"
    )
    assert_refused(
        client.get(f"/api/conversations/{cid}/events/stream?after={huge}", headers=auth),
        "invalid_query",
    )
    stream = client.get(
        f"/api/conversations/{cid}/events/stream", headers={**auth, "Last-Event-ID": str(huge)}
    )
    assert_refused(stream, "invalid_query")
    assert_refused(
        client.post(
            f"/api/conversations/{cid}/finish", json={"expected_chunks": huge}, headers=auth
        ),
        "invalid_body",
    )
    presign = client.post(
        f"/api/conversations/{cid}/chunks/presign",
        json={"index": 0, "size": huge, "content_type": "audio/ogg"},
        headers=auth,
    )
    assert_refused(presign, "invalid_body")
    assert_refused(
        client.post(
            f"/api/conversations/{cid}/finish", json={"expected_chunks": 1e400}, headers=auth
        ),
        "invalid_body",
    )


def test_the_bounds_show_in_openapi(client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]

    def prop(model: str, name: str) -> dict[str, Any]:
        (key,) = [k for k in schemas if k.split(".")[0] == model]
        p = schemas[key]["properties"][name]
        return p["anyOf"][0] if "anyOf" in p else p

    assert prop("OperatorListQuery", "stuck_seconds")["maximum"] == 315_360_000
    assert prop("OperatorListQuery", "offset")["maximum"] == 10_000_000
    assert prop("OperatorListQuery", "limit")["maximum"] == 200
    assert prop("EventsQuery", "after")["maximum"] == 2**63 - 1
    assert prop("FinishRequest", "expected_chunks")["maximum"] == 100_001
    assert prop("PresignRequest", "size")["maximum"] == 2**40
    assert prop("ChunkUploadForm", "index")["maximum"] == 100_000


def test_every_number_a_request_carries_is_bounded_in_openapi(client: Any) -> None:
    """A guard for routes to come: a request number without bounds is how 500s came in."""
    spec = client.get("/openapi.json").get_json()
    components = spec["components"]["schemas"]

    def numbers(schema: dict[str, Any], where: str, seen: frozenset[str]) -> list[tuple]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return [] if name in seen else numbers(components[name], where, seen | {name})
        found = []
        if schema.get("type") in ("integer", "number"):
            found.append((where, schema))
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                found += numbers(sub, where, seen)
        for name, sub in schema.get("properties", {}).items():
            found += numbers(sub, f"{where}.{name}", seen)
        if isinstance(schema.get("items"), dict):
            found += numbers(schema["items"], f"{where}[]", seen)
        return found

    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                found += numbers(p["schema"], f"{method} {path} {p['in']}.{p['name']}", frozenset())
            for media in op.get("requestBody", {}).get("content", {}).values():
                found += numbers(media["schema"], f"{method} {path} body", frozenset())
    assert found, "no request numbers found: the walk is broken"
    unbounded = [
        where
        for where, s in found
        if not (
            {"minimum", "exclusiveMinimum"} & s.keys()
            and {"maximum", "exclusiveMaximum"} & s.keys()
        )
    ]
    assert unbounded == []

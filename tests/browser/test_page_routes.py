"""The page routes over real HTTP (Flask test client): who gets which page, the sign-in cookie,
the headers. No browser needed; the browser tests are in test_pages.py."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.stack import OPERATOR


def create(client: Any) -> dict[str, Any]:
    r = client.post("/api/conversations", json={"title": "Routes <b>check</b>"})
    assert r.status_code == 201
    body: dict[str, Any] = r.get_json()
    return body


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_participant_page_needs_the_conversation_token(client: Any) -> None:
    conv = create(client)
    path = conv["participant_url"].split("://", 1)[1].split("/", 1)[1]
    ok = client.get(f"/{path}")
    assert ok.status_code == 200
    html = ok.get_data(as_text=True)
    assert f'data-conversation-id="{conv["id"]}"' in html
    assert "Routes &lt;b&gt;check&lt;/b&gt;" in html  # escaped, never markup
    assert 'data-slice-seconds="30.0"' in html
    assert "script-src 'self'" in ok.headers["Content-Security-Policy"]
    assert ok.headers["Referrer-Policy"] == "no-referrer"  # the token is in the address
    assert ok.headers["Cache-Control"] == "no-store"

    assert client.get(f"/c/{conv['id']}?token=wrong").status_code == 403
    assert client.get(f"/c/{conv['id']}").status_code == 403
    assert client.get(f"/c/{'0' * 32}?token={conv['token']}").status_code == 404
    short = client.get(f"/c/{conv['id']}?token={conv['token']}&slice=0.01")
    assert 'data-slice-seconds="1.0"' in short.get_data(as_text=True)
    # The operator may open any participant page.
    assert client.get(f"/c/{conv['id']}?token={OPERATOR_TOKEN}").status_code == 200


def test_dashboard_signs_in_by_form_or_bearer(client: Any) -> None:
    first = client.get("/dashboard")
    assert first.status_code == 302 and first.headers["Location"].startswith("/login")

    form = client.get("/login?next=/dashboard%23c%3Dabc")
    csrf = csrf_of(form.get_data(as_text=True))
    wrong = client.post("/login", data={"csrf": csrf, "token": "nope", "next": "/dashboard"})
    assert wrong.status_code == 401
    stale = client.post("/login", data={"csrf": "forged", "token": OPERATOR_TOKEN})
    assert stale.status_code == 401
    good = client.post(
        "/login", data={"csrf": csrf, "token": OPERATOR_TOKEN, "next": "//evil.example/x"}
    )
    assert good.status_code == 302 and good.headers["Location"] == "/dashboard"
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert OPERATOR_TOKEN not in page.get_data(as_text=True)
    # The cookie opens the operator API the page calls.
    assert client.get("/api/operator/conversations").status_code == 200

    csrf = csrf_of(page.get_data(as_text=True))
    assert client.post("/logout", data={"csrf": csrf}).status_code == 302
    assert client.get("/dashboard").status_code == 302
    assert client.get("/api/operator/conversations").status_code == 401


def test_bearer_header_opens_the_dashboard_and_a_wrong_one_does_not(app: Any) -> None:
    client = app.test_client()
    assert client.get("/dashboard", headers=OPERATOR).status_code == 200
    assert client.get("/api/operator/conversations").status_code == 200  # cookie was set
    other = app.test_client()
    assert other.get("/dashboard", headers={"Authorization": "Bearer nope"}).status_code == 403


def test_session_cookie_is_secure_over_https(client: Any) -> None:
    form = client.get("/login", base_url="https://mina.example")
    csrf = csrf_of(form.get_data(as_text=True))
    r = client.post(
        "/login", data={"csrf": csrf, "token": OPERATOR_TOKEN}, base_url="https://mina.example"
    )
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]


def test_vendored_scripts_are_served_with_their_licenses(client: Any) -> None:
    for path in (
        "/static/vendor/socket.io.min.js",
        "/static/vendor/chart.umd.min.js",
        "/static/vendor/socket.io-client.LICENSE",
        "/static/vendor/chart.js.LICENSE.md",
        "/static/js/participant.js",
        "/static/css/mina.css",
    ):
        r = client.get(path)
        assert r.status_code == 200, path
        assert len(r.data) > 500, path
        r.close()
    sio = client.get("/static/vendor/socket.io.min.js")
    assert b"Socket.IO v4." in sio.data[:200]
    sio.close()

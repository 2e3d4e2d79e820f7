"""The dashboard's webhooks card (docs/webhooks.md): a subscription whose receiver is down shows
its dead letter with the last error; Retry, once the receiver is back, delivers it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.browser.conftest import console_log, operator_login
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.stack import wait_for
from tests.integration.test_outgoing_webhooks import Receiver, no_subscriptions

__all__ = ["no_subscriptions"]  # the fixture, used below

pytestmark = pytest.mark.browser

AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def test_a_dead_letter_is_listed_and_retried_from_the_dashboard(
    workers: Any, live_server: Any, context: Any, no_subscriptions: None
) -> None:
    workers(threads=2)
    server = live_server()
    receiver = Receiver()
    receiver.start()
    receiver.stop()  # its port is known and refuses connections
    r = requests.post(
        f"{server.url}/api/operator/webhooks/subscriptions",
        json={"url": receiver.url, "event_types": ["*"], "max_attempts": 1},
        headers=AUTH,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]
    created = requests.post(f"{server.url}/api/conversations", json={"title": "x"}, timeout=10)
    assert created.status_code == 201

    def dead() -> list[dict[str, Any]]:
        out = requests.get(
            f"{server.url}/api/operator/webhooks/deliveries?status=dead", headers=AUTH, timeout=10
        )
        found: list[dict[str, Any]] = out.json()["deliveries"]
        return found

    letter = wait_for(lambda: dead(), timeout=60)[0]

    page = context.new_page()
    logs = console_log(page)
    operator_login(page, server.url)
    row = f'#webhooks-dead tr[data-id="{letter["id"]}"]'
    page.wait_for_selector(row, timeout=15_000)
    assert page.is_visible("#webhooks-card")
    assert "ConnectError" in page.inner_text(row)
    assert "failures in a row" not in page.inner_text("#webhooks-subs")  # 1 of 10: still active
    assert page.inner_text("#webhooks-subs li b") == "active"

    receiver.start()
    page.click(f"{row} button")
    page.wait_for_selector(row, state="detached", timeout=15_000)
    assert "queued again" in page.inner_text("#webhooks-status")
    wait_for(lambda: letter["event_id"] in receiver.accepted_ids(), timeout=30)
    assert dead() == []
    receiver.stop()
    assert not [line for line in logs if "error" in line.lower()], logs

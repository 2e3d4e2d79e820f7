"""The pages' layout at common laptop widths, in Chromium: nothing overflows its card (the
dashboard's stats, the speakers table), and the participant page's first render, before any
script runs, shows a neutral state rather than a red "recording"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from mina.db import session_scope
from mina.models import Chunk
from tests.browser.conftest import OVERFLOWS, SHOTS, console_log, operator_login
from tests.browser.test_pages import SIMULATED, Watch, create_conversation, upload_and_finish
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.stack import wait_for

pytestmark = pytest.mark.browser

WIDTHS = (1280, 1440)


@pytest.fixture(scope="module")
def short_meeting(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("layout"), minutes=0.5, chunk_seconds=30)


def slow_chunks(cid: str, seconds: float) -> None:
    """As if each chunk took `seconds` to transcribe (a slow provider): wide stat values."""
    with session_scope() as s:
        s.execute(
            update(Chunk)
            .where(Chunk.conversation_id == cid)
            .values(started_at=Chunk.finished_at - timedelta(seconds=seconds))
        )


def test_dashboard_fits_its_cards_at_laptop_widths(
    env: Any, workers: Any, live_server: Any, browser: Any, short_meeting: Meeting
) -> None:
    env(**SIMULATED)
    running = [workers()]
    server = live_server()
    conv = create_conversation(server.url, "A meeting whose title is long enough to test wrapping")
    upload_and_finish(server.url, conv, short_meeting.path)
    status = f"{server.url}/api/conversations/{conv['id']}"
    import requests

    def ready() -> bool:
        r = requests.get(status, headers={"Authorization": f"Bearer {conv['token']}"}, timeout=10)
        return bool(r.json()["processing_status"] == "ready")

    wait_for(ready, timeout=120)
    slow_chunks(conv["id"], 1234.5)
    for width in WIDTHS:
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        page = ctx.new_page()
        logs = console_log(page)
        watch = Watch(page, conv["id"], server, running, logs)
        operator_login(page, server.url, "/login?next=/dashboard")
        watch.wait('.stat[data-stat="chunk p50 / p95"]')
        value = page.locator('.stat[data-stat="chunk p50 / p95"] b').inner_text()
        assert value == "1234.5 s / 1234.5 s", value
        page.click(f'#conv-rows tr[data-id="{conv["id"]}"]')
        watch.wait("#r-analytics:not(.hidden) #d-speakers tbody tr")
        headers = page.locator("#d-speakers th").all_inner_texts()
        assert [h.lower() for h in headers][-1] == "fillers", headers
        problems = page.evaluate(OVERFLOWS)
        page.screenshot(path=str(SHOTS / f"dashboard-{width}.png"), full_page=True)
        assert problems == [], f"at {width}px: {problems}"
        ctx.close()


def test_participant_page_renders_a_neutral_state_before_its_script_runs(
    live_server: Any, browser: Any
) -> None:
    server = live_server()
    conv = create_conversation(server.url, "Not recording yet")
    for width in WIDTHS:
        viewport = {"width": width, "height": 900}
        ctx = browser.new_context(viewport=viewport, java_script_enabled=False)
        page = ctx.new_page()
        page.goto(conv["participant_url"])
        phase = page.locator("#phase")
        assert phase.get_attribute("data-state") not in ("recording", "failed", "offline")
        assert "recording" not in phase.inner_text()
        red = page.evaluate(
            "() => [...document.querySelectorAll('.pill')].filter(p => "
            "getComputedStyle(p).backgroundColor === 'rgb(208, 75, 94)').map(p => p.id)"
        )
        assert red == [], red
        assert page.evaluate(OVERFLOWS) == []
        ctx.close()
    # With its script, the page says what it is: ready to record, not recording.
    ctx = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = ctx.new_page()
    page.goto(conv["participant_url"])
    wait_for(lambda: page.locator("#phase").get_attribute("data-state") == "ready-to-record", 15)
    ctx.close()

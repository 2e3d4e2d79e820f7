"""Search on the dashboard (docs/memory.md): a real espeak meeting through the local transcriber
and real workers; once revealed, a word said in it is found from the dashboard's search box, the
hit's snippet marks it, and opening the hit shows the transcript at that moment."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import console_log, operator_login
from tests.browser.test_pages import REAL, Watch, create_conversation, get_json, upload_and_finish
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.audio import Meeting, meeting

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("search"), minutes=0.75, chunk_seconds=30)


def test_the_dashboard_finds_a_word_and_opens_the_transcript_there(
    env: Any, workers: Any, live_server: Any, context: Any, talk: Meeting
) -> None:
    env(**REAL)
    running = workers()
    server = live_server()
    page = context.new_page()
    logs = console_log(page)
    operator_login(page, server.url)

    conv = create_conversation(server.url, "Searchable sync")
    watch = Watch(page, conv["id"], server, [running], logs)
    upload_and_finish(server.url, conv, talk.path)
    watch.wait(f'#conv-rows tr[data-id="{conv["id"]}"][data-processing="ready"]', timeout=150)

    # A word from the middle of what the transcriber heard: the longest of a later segment.
    segments = get_json(f"{server.url}/api/conversations/{conv['id']}/transcript", OPERATOR_TOKEN)[
        "segments"
    ]
    target = segments[len(segments) // 2]
    word = max(re.findall(r"[A-Za-z]{5,}", target["text"]), key=len)

    page.fill("#search-q", word)
    page.click("#search-form button[type=submit]")
    hit = f'#search-hits li[data-conversation="{conv["id"]}"]'
    watch.wait(hit, timeout=15)
    marked = page.locator(f"{hit} mark").all_inner_texts()
    assert any(m.lower().startswith(word.lower()[:4]) for m in marked), (word, marked)
    found = page.eval_on_selector_all(hit, "ns => ns.map(n => n.dataset.start)")
    starts = [float(s) for s in found]
    said = [s["start"] for s in segments if word.lower() in s["text"].lower()]
    assert set(starts) <= {round(s, 3) for s in said}, (starts, said)

    page.locator(f"{hit} a.search-open").first.click()
    watch.wait("#d-transcript p.seg-hit", timeout=20)
    assert page.locator('.tabs button[data-tab="transcript"]').get_attribute("aria-selected") == (
        "true"
    )
    shown_at = float(page.locator("#d-transcript p.seg-hit").get_attribute("data-start") or "-1")
    assert shown_at <= min(starts) + 0.05
    assert not [line for line in logs if "error" in line.lower()], logs

"""The dashboard names a speaker: the learned names are listed with how sure they are, a rename
goes through the API and shows in the transcript and action items at once. Real espeak
meeting, local transcriber and language rules, a live `mina web`, Debian's chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import console_log, operator_login
from tests.browser.test_pages import REAL, Watch, create_conversation, get_json, upload_and_finish
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.audio import Meeting, meeting

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    # Alice and Bob (mina.synth): "Good morning, Bob", ... "I'll send the report by Friday."
    return meeting(tmp_path_factory.mktemp("names"), minutes=0.75, chunk_seconds=30)


def test_the_dashboard_renames_a_speaker_everywhere(
    env: Any, workers: Any, live_server: Any, context: Any, talk: Meeting
) -> None:
    env(**REAL)
    running = workers()
    server = live_server()
    page = context.new_page()
    logs = console_log(page)
    operator_login(page, server.url)

    conv = create_conversation(server.url, "Contract")
    watch = Watch(page, conv["id"], server, [running], logs)
    row = f'#conv-rows tr[data-id="{conv["id"]}"]'
    upload_and_finish(server.url, conv, talk.path)
    watch.wait(f'{row}[data-processing="ready"]', timeout=120)
    page.click(row)
    watch.wait("#r-names:not(.hidden)", timeout=30)
    api = f"{server.url}/api/conversations/{conv['id']}"
    speakers = get_json(f"{api}/speakers", OPERATOR_TOKEN)["speakers"]
    items = get_json(f"{api}/tasks", OPERATOR_TOKEN)["items"]
    found = [it for it in items if it["owner_speaker"]]
    assert found, items
    contract = found[0]  # "I'll send the report by Friday": Alice
    owning = [s for s in speakers if s["speaker"] == contract["owner_speaker"]]
    assert len(owning) == 1, (contract, speakers)
    speaker = owning[0]
    form = f'#r-speakers form[data-speaker="{speaker["speaker"]}"]'
    assert page.locator(f"{form} input").input_value() == speaker["shown"] == contract["owner"]
    if speaker["source"] == "conversation":
        assert "% sure" in page.locator(form).inner_text()

    # The participant's page is open too: the new name reaches it through the ledger.
    participant = context.new_page()
    participant.goto(conv["participant_url"])
    participant.wait_for_selector("body[data-revealed=true]", timeout=30_000)
    assert "Victor Hugo" not in participant.locator("#action-items").inner_text()

    page.fill(f"{form} input", "Victor Hugo")
    page.click(f"{form} button")
    watch.wait("#d-message.notice", timeout=10)
    assert page.locator("#d-message").inner_text() == f"{speaker['shown']} is now Victor Hugo."
    watch.wait(f'{form} input[value="Victor Hugo"]', timeout=10)
    assert "given" in page.locator(form).inner_text()
    items = get_json(f"{api}/tasks", OPERATOR_TOKEN)["items"]
    assert [it["owner"] for it in items if it["text"] == contract["text"]] == ["Victor Hugo"]
    assert "Victor Hugo" in page.locator("#r-items").inner_text()
    participant.wait_for_function(
        "document.querySelector('#action-items').innerText.includes('Victor Hugo')", timeout=15_000
    )
    assert "Victor Hugo" in participant.locator("#transcript").inner_text()
    transcript = get_json(f"{api}/transcript", OPERATOR_TOKEN)["segments"]
    assert "Victor Hugo" in {s["speaker"] for s in transcript}
    assert "speaker_renamed" in [
        e["type"] for e in get_json(f"{api}/events", OPERATOR_TOKEN)["events"]
    ]

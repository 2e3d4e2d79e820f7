"""The pages in a real browser: the participant page and the operator dashboard, against a live
`mina web` process and real workers (simulated transcriber and language provider)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from mina.db import session_scope
from mina.models import Chunk, Event
from tests.browser.conftest import SHOTS, console_log, overflows_after_resize
from tests.conftest import OPERATOR_TOKEN
from tests.fixtures.audio import Meeting, meeting, wer
from tests.fixtures.stack import wait_for

pytestmark = pytest.mark.browser

# One real chunk: the local transcriber and language provider, so pages show real results.
REAL = {"transcriber": "local", "language_provider": "local"}
SIMULATED = {
    "transcriber": "simulated",
    "language_provider": "simulated",
    "sim_latency_seconds": 0.2,
}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("meeting"), minutes=0.75, chunk_seconds=30)


def create_conversation(base: str, title: str) -> dict[str, Any]:
    r = requests.post(f"{base}/api/conversations", json={"title": title}, timeout=10)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def get_json(url: str, token: str) -> Any:
    r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def event_types(cid: str) -> list[str]:
    with session_scope() as s:
        q = select(Event.type).where(Event.conversation_id == cid).order_by(Event.id)
        return list(s.scalars(q))


class Watch:
    """Waits on the page; a timeout fails with what a person debugging it would look at."""

    def __init__(self, page: Any, cid: str, server: Any, workers: Any, logs: list[str]) -> None:
        self.page, self.cid, self.server, self.workers, self.logs = page, cid, server, workers, logs

    def wait(self, selector: str, timeout: float = 60) -> Any:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            return self.page.wait_for_selector(selector, timeout=timeout * 1000)
        except PlaywrightTimeout:
            SHOTS.mkdir(parents=True, exist_ok=True)
            shot = Path(self.server.log.parent) / "failure.png"
            self.page.screenshot(path=str(shot), full_page=True)
            raise AssertionError(
                f"{selector} not shown within {timeout}s (screenshot {shot})\n"
                f"events: {event_types(self.cid)}\n--- console\n"
                + "\n".join(self.logs[-30:])
                + f"\n--- web\n{self.server.log_tail(40)}\n--- workers\n"
                + "\n".join(w.log_tail(60) for w in self.workers)
            ) from None


def chunks_of(cid: str) -> list[Chunk]:
    with session_scope() as s:
        return list(
            s.scalars(select(Chunk).where(Chunk.conversation_id == cid).order_by(Chunk.index))
        )


def test_participant_uploads_a_file_and_sees_the_reveal(
    env: Any, workers: Any, live_server: Any, context: Any, recording: Meeting
) -> None:
    """A file longer than one slice is handled like a recorded meeting: cut into ~30 s pieces in
    the browser, transcribed in parallel, revealed as turns with speakers and times."""
    env(**REAL)
    running = [workers()]
    server = live_server()
    conv = create_conversation(server.url, "Weekly product meeting")
    page = context.new_page()
    logs = console_log(page)
    watch = Watch(page, conv["id"], server, running, logs)
    page.goto(conv["participant_url"])
    assert page.locator("#conv-title").inner_text() == "Weekly product meeting"

    page.set_input_files("#file-input", str(recording.path))

    pieces = math.ceil(recording.script.duration / 30)
    assert pieces >= 2  # the 45 s meeting: one 30 s piece and the rest
    for index in range(pieces):
        watch.wait(f'.chunk[data-index="{index}"][data-state="transcribed"]', timeout=120)
    live_text = page.locator("#transcript").inner_text()
    assert wer(recording.script.text, re.sub(r"#\d+\s*", " ", live_text)) < 0.3, live_text
    watch.wait('#phase[data-state="ready"]', timeout=120)
    watch.wait("#summary-card:not(.hidden)")
    assert page.locator("#analytics-card canvas#chart-share").is_visible()
    assert page.locator("#speaker-table tbody tr").count() >= 1
    assert page.locator("#transcript .speaker").count() >= 2, "\n".join(logs)
    speakers = set(page.locator("#transcript .speaker").all_inner_texts())
    assert len(speakers) >= 2, speakers  # the two espeak voices (diarization has its own tests)
    final_text = page.locator("#transcript").inner_text()
    words = re.sub(r"\d\d:\d\d|\bS\d+:", " ", final_text)
    assert wer(recording.script.text, words) < 0.3, final_text
    assert page.locator("#action-items li").count() >= 1
    assert page.locator("#task-list [data-state='done']").count() == 6

    # Turns: one paragraph per change of speaker, each with its mm:ss time, in order.
    turns = page.locator("#transcript p.seg")
    assert turns.count() >= 3, final_text
    times = page.locator("#transcript p.seg .seg-time").all_inner_texts()
    assert len(times) == turns.count()
    seconds = [int(t[:2]) * 60 + int(t[3:]) for t in times]
    assert seconds == sorted(seconds) and seconds[-1] >= 30, times

    chunks = chunks_of(conv["id"])
    assert [c.index for c in chunks] == list(range(pieces))
    assert {c.mime for c in chunks} == {"audio/wav"}
    assert all(abs((c.duration or 0) - 30) < 0.1 for c in chunks[:-1]), [c.duration for c in chunks]
    total = sum(c.duration or 0 for c in chunks)
    assert abs(total - recording.script.duration) < 0.5, (total, recording.script.duration)
    status = get_json(f"{server.url}/api/conversations/{conv['id']}", conv["token"])
    assert status["processing_status"] == "ready" and status["expected_chunks"] == pieces
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "participant.png"), full_page=True)
    for width in (1280, 1440):  # the revealed page: no card or table overflows
        page.set_viewport_size({"width": width, "height": 900})
        assert overflows_after_resize(page) == [], width


def test_a_file_longer_than_the_chunk_limit_is_cut_into_pieces_in_the_browser(
    env: Any, workers: Any, live_server: Any, context: Any, recording: Meeting
) -> None:
    env(**SIMULATED, max_chunk_seconds=20)
    running = [workers()]
    server = live_server()
    conv = create_conversation(server.url, "Long file")
    page = context.new_page()
    watch = Watch(page, conv["id"], server, running, console_log(page))
    page.goto(f"{conv['participant_url']}&slice=15")
    page.set_input_files("#file-input", str(recording.path))
    watch.wait('#phase[data-state="ready"]', timeout=120)

    chunks = chunks_of(conv["id"])
    expected = math.ceil(recording.script.duration / 15)
    assert [c.index for c in chunks] == list(range(expected))
    assert {c.mime for c in chunks} == {"audio/wav"}
    assert all(c.status == "transcribed" for c in chunks)
    assert all(abs((c.duration or 0) - 15) < 0.1 for c in chunks[:-1]), [c.duration for c in chunks]
    total = sum(c.duration or 0 for c in chunks)
    assert abs(total - recording.script.duration) < 0.5, (total, recording.script.duration)
    assert page.locator('.chunk[data-state="transcribed"]').count() == expected


def test_recorder_uploads_slices_and_survives_offline_and_a_closed_tab(
    env: Any, workers: Any, live_server: Any, context: Any
) -> None:
    env(**SIMULATED)
    running = [workers()]
    server = live_server()
    conv = create_conversation(server.url, "Recorded here")
    url = f"{conv['participant_url']}&slice=2"
    page = context.new_page()
    logs = console_log(page)
    watch = Watch(page, conv["id"], server, running, logs)
    page.goto(url)
    page.click("#btn-record")
    watch.wait('#phase[data-state="recording"]')
    watch.wait('.chunk[data-index="1"][data-state="transcribed"]')

    # The network drops: slices keep being recorded into IndexedDB and wait there.
    context.set_offline(True)
    watch.wait('.chunk[data-state="retrying"], .chunk[data-state="saved"]', timeout=30)
    waiting_tiles = '.chunk[data-state="saved"], .chunk[data-state="retrying"]'
    wait_for(lambda: page.locator(waiting_tiles).count() >= 2, timeout=30)
    waiting = tile_indexes(page, "saved", "retrying")
    recording_now = tile_indexes(page, "recording")
    assert len(recording_now) == 1, recording_now
    # The slice being recorded has data in IndexedDB before the tab goes away.
    wait_for(lambda: stored_parts(page, conv["id"], recording_now[0]) > 0, timeout=15)
    # ... and the tab is closed mid-slice, still offline.
    page.close()
    context.set_offline(False)

    again = context.new_page()
    logs2 = console_log(again)
    watch = Watch(again, conv["id"], server, running, logs + logs2)
    again.goto(url)
    # Everything recorded before the close is uploaded by the new page, the cut-off slice too.
    for index in [*waiting, *recording_now]:
        watch.wait(f'.chunk[data-index="{index}"][data-state="transcribed"]')
    assert again.locator('.chunk[data-state="recording"]').count() == 0
    again.click("#btn-finish")
    watch.wait('#phase[data-state="ready"]', timeout=120)

    chunks = chunks_of(conv["id"])
    on_server = {c.index for c in chunks}
    assert {*waiting, *recording_now} <= on_server
    assert len(waiting) >= 2 and min(waiting) >= 2  # two went up before the network dropped
    assert all(c.status == "transcribed" for c in chunks)
    mimes = {c.index: c.mime for c in chunks}
    # Whole slices are MediaRecorder's webm; the one cut off by the closed tab ends mid-cluster,
    # so the page decoded it and sent it as WAV (the server refuses truncated webm).
    assert mimes.pop(recording_now[0]) == "audio/wav"
    assert set(mimes.values()) == {"audio/webm"}, mimes
    # Every slice is a file of its own that decodes alone (the server probed each one).
    assert all((c.duration or 0) > 0.5 for c in chunks), [c.duration for c in chunks]
    status = get_json(f"{server.url}/api/conversations/{conv['id']}", conv["token"])
    assert status["expected_chunks"] == len(chunks)
    assert status["chunks"]["transcribed"] == len(chunks)


def tile_indexes(page: Any, *states: str) -> list[int]:
    selector = ", ".join(f'.chunk[data-state="{s}"]' for s in states)
    values = page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.dataset.index)")
    return sorted(int(v) for v in values)


STORED_PARTS = """
async ([cid, index]) => {
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("mina-uploads");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => no(r.error);
  });
  const tx = db.transaction("parts");
  const n = await new Promise((ok) => {
    const r = tx.objectStore("parts").index("key").count(`${cid}:${index}`);
    r.onsuccess = () => ok(r.result);
  });
  db.close();
  return n;
}
"""


def stored_parts(page: Any, cid: str, index: int) -> int:
    return int(page.evaluate(STORED_PARTS, [cid, index]))


def upload_and_finish(base: str, conv: dict[str, Any], path: Path) -> None:
    auth = {"Authorization": f"Bearer {conv['token']}"}
    url = f"{base}/api/conversations/{conv['id']}"
    with path.open("rb") as fh:
        r = requests.post(f"{url}/chunks", data={"index": "0"}, files={"file": fh}, headers=auth)
    assert r.status_code == 202, r.text
    assert requests.post(f"{url}/finish", json={}, headers=auth).status_code == 202


def test_dashboard_is_live_and_its_retry_button_recovers_a_failed_task(
    env: Any, workers: Any, live_server: Any, context: Any, recording: Meeting
) -> None:
    env(**REAL, sim_task_fail="summary")
    failing = workers()
    server = live_server()
    page = context.new_page()
    logs = console_log(page)

    # Signing in: the dashboard sends a stranger to the login form, which sets the cookie.
    page.goto(f"{server.url}/dashboard")
    assert "/login" in page.url
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert page.locator(".alert").inner_text() == "That is not the operator token."
    page.fill("input[name=token]", OPERATOR_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/dashboard")
    cookie = next(c for c in context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and not cookie["secure"]  # served over plain http here

    # Conversations created after the page loaded show up by themselves, and move on live.
    other = create_conversation(server.url, "Design review (still recording)")
    conv = create_conversation(server.url, "Weekly product meeting")
    watch = Watch(page, conv["id"], server, [failing], logs)
    row = f'#conv-rows tr[data-id="{conv["id"]}"]'
    other_row = f'#conv-rows tr[data-id="{other["id"]}"]'
    watch.wait(row, timeout=30)
    watch.wait(other_row, timeout=30)
    upload_and_finish(server.url, conv, recording.path)
    watch.wait(f'{row}[data-processing="partial"]', timeout=120)
    assert "failed" in page.locator(f"{row} .mark.failed").first.inner_text()
    assert page.locator(f'{other_row}[data-status="recording"]').count() == 1

    # Filters ask the server: "failed" keeps only the partial one.
    page.check("#f-failed")
    wait_for(lambda: page.locator(other_row).count() == 0, timeout=10)
    assert page.locator(row).count() == 1
    page.uncheck("#f-failed")
    watch.wait(other_row, timeout=10)

    page.click(row)
    watch.wait(f'#detail[data-id="{conv["id"]}"]')
    watch.wait('#d-tasks tr[data-task="summary"][data-state="failed"]')
    assert "simulated" in page.locator('#d-tasks tr[data-task="summary"] .err').inner_text()
    assert page.locator('#d-chunks tr[data-index="0"][data-state="transcribed"]').count() == 1
    assert page.locator('#d-timeline li[data-type="summary_failed"]').count() == 1

    # The cause is fixed (workers without the fault), then the operator clicks retry.
    failing.stop()
    env(sim_task_fail="")
    running = [workers()]
    watch.workers = running
    page.click("#btn-retry-tasks")
    watch.wait('#d-tasks tr[data-task="summary"][data-state="done"]', timeout=60)
    watch.wait('#detail[data-processing="ready"]', timeout=60)
    watch.wait(f'{row}[data-processing="ready"]', timeout=30)
    watch.wait("#r-summary:not(.hidden)", timeout=30)
    assert page.locator('#d-timeline li[data-type="post_transcription_reveal"]').count() == 2
    status = get_json(f"{server.url}/api/conversations/{conv['id']}", OPERATOR_TOKEN)
    assert status["processing_status"] == "ready"
    assert status["tasks"]["summary"]["status"] == "done"
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)


def test_participant_page_catches_up_after_a_drop_and_takes_events_in_any_order(
    env: Any, workers: Any, live_server: Any, context: Any, recording: Meeting
) -> None:
    env(**SIMULATED)
    running = [workers()]
    server = live_server()
    conv = create_conversation(server.url, "Catch-up")
    page = context.new_page()
    logs = console_log(page)
    watch = Watch(page, conv["id"], server, running, logs)
    page.goto(conv["participant_url"])
    watch.wait('#conn[data-state="live"]', timeout=30)

    # The page loses the network; meanwhile the meeting is uploaded elsewhere and processed.
    context.set_offline(True)
    watch.wait('#conn:not([data-state="live"])', timeout=30)
    upload_and_finish(server.url, conv, recording.path)
    status_url = f"{server.url}/api/conversations/{conv['id']}"
    wait_for(lambda: get_json(status_url, conv["token"])["processing_status"] == "ready", 120)
    assert page.locator('#phase[data-state="ready"]').count() == 0
    context.set_offline(False)
    # Back online it rejoins by itself and replays what it missed, each event once.
    watch.wait('#conn[data-state="live"]', timeout=60)
    watch.wait('#phase[data-state="ready"]', timeout=60)
    watch.wait("#summary-card:not(.hidden)")
    assert page.locator(".chunk").count() == 1
    assert page.locator("#task-list [data-state='done']").count() == 6

    # Another tab gets no live feed at all; the ledger is handed to it backwards, twice.
    events = get_json(f"{status_url}/events?after=0", conv["token"])["events"]
    assert len(events) >= 15
    blind = context.new_page()
    blind.route("**/socket.io/**", lambda route: route.abort())
    blind.route("**/events?*", lambda route: route.abort())
    blind.goto(conv["participant_url"])
    wait_for(lambda: blind.evaluate("() => Boolean(window.minaFeed)"), timeout=15)
    assert blind.locator('#phase[data-state="ready"]').count() == 0
    shuffled = list(reversed(events)) + events[::2]
    accepted = blind.evaluate("evs => evs.map(e => window.minaFeed.accept(e))", shuffled)
    assert sum(accepted) == len(events)  # duplicates dropped by id
    watch.page = blind
    watch.wait('#phase[data-state="ready"]', timeout=30)
    watch.wait('.chunk[data-index="0"][data-state="transcribed"]')
    watch.wait("#summary-card:not(.hidden)")
    assert blind.locator("#task-list [data-state='done']").count() == 6

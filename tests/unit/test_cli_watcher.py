"""`mina process` follows its conversations through the ledger's committed events, not polling."""

from __future__ import annotations

import threading
import time

from mina_cli.process import Watcher


def message(cid: str, kind: str, **payload: object) -> dict[str, object]:
    return {"id": 1, "type": kind, "conversation_id": cid, "payload": payload, "created_at": ""}


def test_events_move_the_bars_and_end_the_wait() -> None:
    watcher = Watcher()
    watcher.add("c1")
    assert watcher.wait(0.01) is False  # nothing happened

    watcher(
        [
            message("c1", "chunk_transcribed", index=0),
            message("c1", "chunk_transcribed", index=0),  # at-least-once: counted once
            message("c1", "chunk_failed", index=1),
            message("c1", "merge_started"),
            message("c1", "summary_ready"),
            message("c1", "tasks_failed"),
            message("other", "chunk_transcribed", index=5),  # not ours
        ]
    )
    assert watcher.wait(0.01) is True
    assert watcher.chunks == {"c1": {0, 1}}
    assert watcher.tasks["c1"] == {"merge": "running", "summary": "done", "tasks": "failed"}
    assert "c1" not in watcher.over

    woke: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        watcher.wait(5.0)
        woke.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    watcher([message("c1", "post_transcription_reveal", status="ready")])
    waiter.join(5)
    assert woke and woke[0] < 1.0  # woken by the event, not by its timeout
    assert "c1" in watcher.over

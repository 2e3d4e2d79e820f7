"""The `openai` transcriber against a fake OpenAI server, through real workers.

Transient errors (500, 429, a timeout) are retried and end with the error cleared; permanent
ones (400, 401) fail the chunk at once; a chunk over the provider's upload limit is split into
pieces that each fit; the circuit breaker opens, makes chunks wait without burning attempts,
and closes again; the concurrency cap holds across worker processes.
"""

# ruff: noqa: F811 - pytest fixtures imported from tests.fakes.fixtures

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mina.db import utcnow
from tests.fakes.fixtures import (  # noqa: F401 - fixtures
    all_terminal,
    chunks_of,
    create,
    fake_openai,
    openai_env,
    tone_chunks,
    upload,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.stack import OPERATOR, wait_for


def _metrics(client: Any) -> str:
    r = client.get("/metrics")
    assert r.status_code == 200
    text: str = r.get_data(as_text=True)
    return text


def _circuit(client: Any, provider: str = "openai") -> str:
    for line in _metrics(client).splitlines():
        if line.startswith(f'mina_circuit_state{{provider="{provider}"') and line.endswith(" 1.0"):
            return line.split('state="')[1].split('"')[0]
    raise AssertionError("no circuit state in /metrics")


def test_transient_errors_are_retried_and_the_error_is_cleared(
    client: Any, workers: Any, env: Any, fake_openai: FakeOpenAI, tone_chunks: list[Path]
) -> None:
    env(transcriber="openai", **openai_env(fake_openai, provider_attempts=1))
    fake_openai.script("asr", "500", "429", "timeout")
    workers(threads=2)
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[0])

    [chunk] = wait_for(lambda: all_terminal(cid, 1), timeout=90)
    assert chunk.status == "transcribed"
    assert chunk.error is None and chunk.error_kind is None
    assert chunk.attempts == 4  # one call per attempt: 500, 429, timeout, then the answer
    assert chunk.text is not None and chunk.text.startswith("Fake segment 1.")
    assert [s["end"] for s in chunk.segments or []][-1] == pytest.approx(30.0, abs=0.1)
    calls = fake_openai.calls_to("asr")
    assert len(calls) == 4 and calls[-1].answered == 200
    assert calls[-1].body["response_format"] == "verbose_json"
    assert calls[-1].headers["Authorization"] == f"Bearer {fake_openai.api_key}"


def test_permanent_errors_fail_the_chunk_at_once(
    client: Any, workers: Any, env: Any, fake_openai: FakeOpenAI, tone_chunks: list[Path]
) -> None:
    env(transcriber="openai", **openai_env(fake_openai))
    fake_openai.script("asr", "400", "401")
    workers(threads=2)
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[0])
    upload(client, cid, auth, 1, tone_chunks[1])

    chunks = wait_for(lambda: all_terminal(cid, 2), timeout=60)
    assert [c.status for c in chunks] == ["failed", "failed"]
    assert all(c.attempts == 1 and c.error_kind == "permanent" for c in chunks)
    errors = sorted(c.error or "" for c in chunks)
    assert "HTTP 400" in errors[0] and "HTTP 401" in errors[1]
    assert len(fake_openai.calls_to("asr")) == 2  # no retry of a permanent error
    view = client.get(f"/api/conversations/{cid}", headers=auth).get_json()
    assert {f["index"] for f in view["failed_chunks"]} == {0, 1}


def test_audio_over_the_upload_limit_is_split_into_pieces_that_fit(
    client: Any, workers: Any, env: Any, fake_openai: FakeOpenAI, tone_chunks: list[Path]
) -> None:
    limit = 400_000  # about 12.4 s of 16 kHz mono WAV
    fake_openai.max_bytes = limit
    env(transcriber="openai", **openai_env(fake_openai, openai_max_upload_bytes=limit))
    workers(threads=3)
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[2])

    [chunk] = wait_for(lambda: all_terminal(cid, 1), timeout=90)
    assert chunk.status == "transcribed", chunk.error
    calls = fake_openai.calls_to("asr")
    assert len(calls) == 3 and all(c.answered == 200 for c in calls)
    assert all(c.body["bytes"] <= limit for c in calls)
    starts = [s["start"] for s in chunk.segments or []]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert (chunk.segments or [])[-1]["end"] == pytest.approx(30.0, abs=0.2)


def test_breaker_opens_chunks_wait_without_burning_attempts_then_it_closes(
    client: Any,
    workers: Any,
    env: Any,
    fake_openai: FakeOpenAI,
    tone_chunks: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # workers' metrics, shared
    reset = 6.0
    env(
        transcriber="openai",
        **openai_env(
            fake_openai,
            provider_attempts=1,
            breaker_failures=5,
            breaker_reset_seconds=reset,
            breaker_successes=2,
            chunk_max_attempts=5,
        ),
    )
    fake_openai.fail["asr"] = "500"
    workers(threads=3)
    cid, auth = create(client)
    for n in range(3):
        upload(client, cid, auth, n, tone_chunks[n])

    wait_for(lambda: _circuit(client) == "open", timeout=60)
    stats = client.get("/api/operator/stats", headers=OPERATOR)
    assert stats.status_code == 200 and stats.get_json()["providers"]["openai"] == "open"

    def waiting() -> list[Any] | None:
        # Every chunk back in the queue, not failed, due again only when the circuit may close
        # (so the scheduler does not redispatch it meanwhile).
        now, found = utcnow(), chunks_of(cid)
        ok = all(c.status == "queued" and c.queued_at > now for c in found)
        return found if ok else None

    found = wait_for(waiting, timeout=reset)
    failed_calls = len(fake_openai.calls_to("asr"))
    assert 5 <= failed_calls < 5 + 3  # at most the calls in flight when it opened
    assert all("circuit open" in (c.error or "") for c in found)
    due = min(c.queued_at for c in found)
    time.sleep(max(0.0, (due - utcnow()).total_seconds() - 0.5))
    assert len(fake_openai.calls_to("asr")) == failed_calls  # open: nobody called
    fake_openai.fail.pop("asr")

    chunks = wait_for(lambda: all_terminal(cid, 3), timeout=90)
    assert all(c.status == "transcribed" and c.error is None for c in chunks)
    calls = fake_openai.calls_to("asr")
    assert len(calls) == failed_calls + 3
    # Every attempt is a call: the waits for the open circuit were not counted as attempts.
    assert sum(c.attempts for c in chunks) == len(calls)
    assert _circuit(client) == "closed"
    assert client.get("/api/operator/stats", headers=OPERATOR).get_json()["providers"] == {
        "openai": "closed",
        "openai_chat": "closed",
        "assemblyai": "closed",
    }
    text = _metrics(client)
    assert 'mina_chunk_circuit_waits_total{provider="openai"}' in text
    assert 'mina_chunk_transcription_seconds_count{provider="openai"} 3.0' in text


def test_the_concurrency_cap_holds_across_worker_processes(
    client: Any, workers: Any, env: Any, fake_openai: FakeOpenAI, tone_chunks: list[Path]
) -> None:
    fake_openai.latency["asr"] = 0.6
    env(transcriber="openai", **openai_env(fake_openai, provider_concurrency=2))
    workers(processes=2, threads=3)
    cid, auth = create(client)
    for n in range(6):
        upload(client, cid, auth, n, tone_chunks[n])

    chunks = wait_for(lambda: all_terminal(cid, 6), timeout=120)
    assert all(c.status == "transcribed" for c in chunks)
    assert len(fake_openai.calls_to("asr")) == 6
    assert fake_openai.max_concurrent["asr"] <= 2

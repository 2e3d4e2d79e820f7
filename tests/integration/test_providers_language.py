"""The `openai` language provider against a fake chat-completions server.

The schemas it sends pass OpenAI's strict-mode rules (the fake refuses them otherwise), answers
are validated, invalid output is asked again once and then fails for good, and in the real
post-processing pipeline the tasks' results come from the provider.
"""

# ruff: noqa: F401, F811 - pytest fixtures imported from tests.fakes.fixtures

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mina.db import session_scope
from mina.errors import PermanentError, TransientError
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult
from mina.models import Conversation, Event, PostTask
from mina.providers import openai_chat
from mina.providers.openai_chat import OpenAILanguage, strict_schema
from mina.settings import Settings
from mina.transcript import Segment
from tests.fakes.fixtures import (
    all_terminal,
    create,
    fake_openai,
    openai_env,
    tone_chunks,
    upload,
)
from tests.fakes.openai_server import FakeOpenAI, strict_problem
from tests.fixtures.stack import wait_for

SEGMENTS = [
    Segment(start=0.0, end=2.5, text="um so we we need the report", speaker="S1"),
    Segment(start=2.5, end=4.0, text="ill send it friday", speaker="S2"),
    Segment(start=4.0, end=6.0, text="great", speaker="S1"),
]


@pytest.fixture
def language(fake_openai: FakeOpenAI, clean_redis: None) -> OpenAILanguage:
    return OpenAILanguage(Settings(**openai_env(fake_openai)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "model", [RefinementResult, TasksResult, SummaryResult, openai_chat._Items]
)
def test_result_schemas_are_valid_for_strict_mode(model: Any) -> None:
    assert strict_problem(strict_schema(model)) is None


def test_optional_fields_become_required_and_nullable() -> None:
    assert strict_problem(TasksResult.model_json_schema()) is not None  # as pydantic writes it
    item = strict_schema(TasksResult)["$defs"]["ActionItem"]
    assert set(item["required"]) == {
        "text",
        "owner",
        "owner_speaker",
        "owner_basis",
        "addressee",
        "due",
        "source_time",
        "confidence",
    }
    assert {"type": "null"} in item["properties"]["owner"]["anyOf"]


def test_results_are_validated_and_timings_are_ours(
    language: OpenAILanguage, fake_openai: FakeOpenAI
) -> None:
    refined = language.refine(SEGMENTS)
    assert [(s.start, s.end, s.speaker) for s in refined.segments] == [
        (s.start, s.end, s.speaker) for s in SEGMENTS
    ]
    assert refined.segments[1].text == "Ill send it friday"
    tasks = language.extract_tasks(SEGMENTS, dt.date(2026, 11, 23))
    assert tasks.items[0].text == "Send the fake report" and tasks.items[0].owner == "team"
    assert language.summarize(SEGMENTS, "Weekly").title == fake_openai.summary_title
    chats = fake_openai.calls_to("chat")
    assert [c.body["task"] for c in chats] == ["refinement", "tasks", "summary"]
    assert all(c.answered == 200 for c in chats)


def test_long_transcripts_are_refined_in_batches(
    language: OpenAILanguage, fake_openai: FakeOpenAI
) -> None:
    many = [Segment(start=i, end=i + 1, text=f"line {i}") for i in range(150)]
    refined = language.refine(many)
    assert [s.text for s in refined.segments] == [f"Line {i}" for i in range(150)]
    batches = -(-150 // openai_chat.REFINE_BATCH)
    assert len(fake_openai.calls_to("chat")) == batches


def test_invalid_output_is_asked_again_once_then_it_is_permanent(
    language: OpenAILanguage, fake_openai: FakeOpenAI
) -> None:
    fake_openai.invalid["summary"] = 1
    assert language.summarize(SEGMENTS, None).title == fake_openai.summary_title
    assert len(fake_openai.calls_to("chat")) == 2

    fake_openai.invalid["tasks"] = 2
    with pytest.raises(PermanentError, match="invalid output twice"):
        language.extract_tasks(SEGMENTS, dt.date(2026, 11, 23))
    assert len(fake_openai.calls_to("chat")) == 4


def test_http_errors_are_classified(language: OpenAILanguage, fake_openai: FakeOpenAI) -> None:
    fake_openai.script("chat", "500")
    with pytest.raises(TransientError):  # one call: the post-processing runner retries
        language.summarize(SEGMENTS, None)
    fake_openai.script("chat", "401")
    with pytest.raises(PermanentError, match="HTTP 401"):
        language.summarize(SEGMENTS, None)
    assert len(fake_openai.calls_to("chat")) == 2


def test_post_processing_uses_the_provider_and_falls_back_to_the_rules(
    client: Any, workers: Any, env: Any, fake_openai: FakeOpenAI, tone_chunks: list[Path]
) -> None:
    env(
        transcriber="openai",
        language_provider="openai",
        **openai_env(fake_openai, provider_timeout_seconds=5),
    )
    fake_openai.invalid["summary"] = 1  # asked again: ready
    fake_openai.invalid["tasks"] = 2  # invalid twice: the offline rules answer
    workers(threads=3)
    cid, auth = create(client)
    upload(client, cid, auth, 0, tone_chunks[4])
    client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth)
    wait_for(lambda: all_terminal(cid, 1), timeout=90)

    def revealed() -> Conversation | None:
        with session_scope() as s:
            conv = s.get(Conversation, cid)
            return conv if conv is not None and conv.revealed_at is not None else None

    conv = wait_for(revealed, timeout=180)
    assert conv.processing_status == "ready"
    with session_scope() as s:
        rows = {
            t.name: t for t in s.scalars(select(PostTask).where(PostTask.conversation_id == cid))
        }
    assert rows["summary"].status == "done"
    assert rows["summary"].result is not None
    assert rows["summary"].result["title"] == fake_openai.summary_title
    assert rows["tasks"].status == "done" and rows["tasks"].result is not None
    assert "fake" not in str(rows["tasks"].result).lower()  # the rules' answer, not the model's
    with session_scope() as s:
        fallbacks = [
            e.payload
            for e in s.scalars(select(Event).where(Event.conversation_id == cid))
            if e.type == "language_fallback"
        ]
    assert fallbacks == [{"task": "tasks", "error": fallbacks[0]["error"]}]
    assert "invalid output twice" in fallbacks[0]["error"]
    assert rows["refinement"].status == "done"
    assert rows["refinement"].result is not None
    assert rows["refinement"].result["segments"][0]["text"] == "Fake segment 1."


def test_the_rules_answer_when_the_model_provider_fails(
    fake_openai: FakeOpenAI, clean_redis: None
) -> None:
    from mina.providers.language import with_rules

    settings = Settings(language_provider="openai", **openai_env(fake_openai))  # type: ignore[arg-type]
    fake_openai.script("chat", "401")
    refined, error = with_rules(settings, "refinement", lambda p: p.refine(SEGMENTS))
    assert error is not None and "401" in error
    assert [s.text for s in refined.segments][:2] == [
        "So we need the report.",
        "I'll send it Friday.",
    ]
    fake_openai.invalid["tasks"] = 2
    found, error = with_rules(
        settings, "tasks", lambda p: p.extract_tasks(SEGMENTS, dt.date(2026, 11, 23))
    )
    assert error is not None and "invalid output twice" in error
    assert "fake" not in str(found).lower()
    answered, error = with_rules(settings, "summary", lambda p: p.summarize(SEGMENTS, None))
    assert error is None and answered.title == fake_openai.summary_title  # a working model is used

"""Result schemas reject what a misbehaving provider could return."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mina.insights.schemas import (
    ActionItem,
    AnalyticsResult,
    DiarizationResult,
    RefinementResult,
    SummaryResult,
    TasksResult,
)

GOOD_ITEM = {"text": "Send the report", "owner": "S1", "due": "2026-11-27", "confidence": 0.8}


def test_a_valid_task_list_round_trips() -> None:
    result = TasksResult.model_validate({"items": [GOOD_ITEM]})
    assert TasksResult.model_validate_json(result.model_dump_json()) == result
    assert result.items[0].source_time is None


@pytest.mark.parametrize(
    "change",
    [
        {"confidence": 1.5},
        {"confidence": -0.1},
        {"due": "next Friday"},
        {"due": "2026-02-30"},
        {"text": ""},
        {"source_time": -1},
        {"priority": "high"},
    ],
)
def test_invalid_action_items_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ActionItem.model_validate(GOOD_ITEM | change)


def test_summary_needs_every_field() -> None:
    with pytest.raises(ValidationError):
        SummaryResult.model_validate({"title": "x", "summary": "y", "key_points": []})
    with pytest.raises(ValidationError):
        SummaryResult.model_validate(
            {"title": "", "summary": "", "key_points": [], "decisions": [], "open_questions": []}
        )


def test_refinement_segments_are_transcript_segments() -> None:
    ok = RefinementResult.model_validate({"segments": [{"start": 0, "end": 1, "text": "Hi."}]})
    assert ok.segments[0].speaker is None
    with pytest.raises(ValidationError):
        RefinementResult.model_validate({"segments": [{"start": 0, "text": "Hi."}]})


def test_diarization_turns_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        DiarizationResult.model_validate(
            {"speakers": 1, "turns": [{"start": 2.0, "end": 1.0, "speaker": "S1"}]}
        )


def test_analytics_share_is_a_fraction() -> None:
    speaker = {
        "speaker": "S1",
        "talk_seconds": 1,
        "share": 1.2,
        "words": 1,
        "wpm": 60,
        "turns": 1,
        "longest_monologue_seconds": 1,
        "interruptions": 0,
        "fillers": 0,
        "questions": 0,
    }
    with pytest.raises(ValidationError):
        AnalyticsResult.model_validate(
            {"duration": 1, "silence_seconds": 0, "speakers": [speaker], "timeline": []}
        )

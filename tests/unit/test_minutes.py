"""Meeting notes as Markdown (mina.minutes): what a person reads, from a given notes document."""

from __future__ import annotations

from typing import Any

from mina import minutes
from mina.transcript import Segment


def notes(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "conversation_id": "c1",
        "title": "Planning | Q3",
        "date": "2026-12-02 09:30 UTC",
        "duration_seconds": 3725.4,
        "language": "en",
        "status": "transcribed",
        "processing_status": "ready",
        "pending": [],
        "notices": [],
        "summary": "We planned the quarter.",
        "key_points": [],
        "decisions": ["Ship in March"],
        "open_questions": [],
        "action_items": [
            {"text": "Send the a|b report", "owner": "Bob", "due": "2026-12-04", "time": 3601.0}
        ],
        "action_note": None,
        "speakers": [
            {
                "speaker": "Bob",
                "talk_seconds": 65.0,
                "share": 0.5,
                "words": 120,
                "turns": 3,
                "questions": 1,
            }
        ],
        "transcript": [{"start": 0.0, "end": 4.0, "speaker": "Bob", "text": "Hello."}],
    }
    doc.update(over)
    return doc


def test_markdown_has_every_part_with_clock_times_and_safe_tables() -> None:
    md = minutes.markdown(notes())
    assert md.startswith("# Planning | Q3\n")
    assert "- **Duration:** 1:02:05" in md  # an hour and more: h:mm:ss
    assert "- **Language:** English (en)" in md
    assert "## Decisions\n\n- Ship in March\n" in md
    assert "## Open questions\n\nNone.\n" in md  # said, even when there are none
    assert "| Send the a\\|b report | Bob | 2026-12-04 | 1:00:01 |" in md  # pipes escaped
    assert "| Bob | 01:05 | 50% | 120 | 3 | 1 |" in md
    assert "**00:00 Bob:** Hello." in md


def test_parts_still_processing_are_listed_not_invented() -> None:
    md = minutes.markdown(
        notes(pending=["summary", "action items"], summary=None, decisions=[], action_items=[])
    )
    assert "- **Still processing:** summary, action items" in md
    assert "## Summary" not in md and "## Decisions" not in md and "## Action items" not in md


def test_a_notice_replaces_an_empty_action_list() -> None:
    note = "Action items and due dates are found only in English; this conversation is in German"
    md = minutes.markdown(notes(action_items=[], action_note=note, notices=[note], language="de"))
    assert f"## Action items\n\n{note}\n" in md
    assert md.count(note) == 1


def test_turns_join_one_speakers_consecutive_segments() -> None:
    segs = [
        Segment(start=0.0, end=2.0, text="Hello", speaker="A"),
        Segment(start=2.1, end=4.0, text="there.", speaker="A"),
        Segment(start=4.5, end=6.0, text="Hi.", speaker="B"),
        Segment(start=6.5, end=7.0, text="  ", speaker="A"),
    ]
    assert minutes.turns(segs) == [
        {"start": 0.0, "end": 4.0, "text": "Hello there.", "speaker": "A"},
        {"start": 4.5, "end": 6.0, "text": "Hi.", "speaker": "B"},
    ]


def test_the_terminal_prints_the_transcript_in_turns() -> None:
    from io import StringIO

    from rich.console import Console

    from mina_cli.render import render

    segments = [
        {"start": 21.0, "end": 21.4, "speaker": "S3", "text": "Press"},
        {"start": 21.4, "end": 24.0, "speaker": "S3", "text": "1 to list users."},
        {"start": 24.5, "end": 27.0, "speaker": "S1", "text": "Thanks."},
        {"start": 27.5, "end": 29.0, "speaker": "S3", "text": "You are muted."},
    ]
    result = {
        "conversation_id": "c1",
        "status": "transcribed",
        "processing_status": "ready",
        "transcript": {"segments": segments},
    }
    out = StringIO()
    render(result, Console(file=out, width=120, color_system=None), "meeting")
    lines = out.getvalue().split("Transcript", 1)[1].strip().splitlines()
    assert lines == [
        "00:21 S3: Press 1 to list users.",
        "00:24 S1: Thanks.",
        "00:27 S3: You are muted.",
    ]

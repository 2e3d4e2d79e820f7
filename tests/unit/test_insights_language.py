"""The offline `local` language provider: refinement, action items, due dates, summary."""

from __future__ import annotations

import datetime as dt

import pytest

from mina.insights import dates
from mina.insights.refine import refine
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult
from mina.insights.summary import summarize
from mina.insights.tasks import extract_tasks
from mina.transcript import Segment

MONDAY = dt.date(2026, 11, 23)


def seg(start: float, end: float, text: str, speaker: str | None = None) -> Segment:
    return Segment(start=start, end=end, text=text, speaker=speaker, chunk_index=0)


# ---------------------------------------------------------------------------- refinement


def test_refine_keeps_timings_and_cleans_text() -> None:
    raw = [
        seg(0.0, 2.5, "um so i think the the plan is good", "S1"),
        seg(2.5, 4.0, "what do you think", "S2"),
        seg(4.0, 6.2, "Well, you know, we we should ship it on friday", "S1"),
        seg(6.2, 7.0, "Uh.", "S2"),
        seg(7.0, 9.0, "I I think I think  it works ,  really", "S2"),
    ]
    result = refine(raw)
    assert isinstance(result, RefinementResult)
    assert [(s.start, s.end, s.speaker, s.chunk_index) for s in result.segments] == [
        (s.start, s.end, s.speaker, s.chunk_index) for s in raw
    ]
    assert [s.text for s in result.segments] == [
        "So I think the plan is good.",
        "What do you think?",
        "Well, we should ship it on Friday.",
        "",
        "I think it works, really.",
    ]


def test_refine_continues_an_open_sentence_across_segments() -> None:
    result = refine([seg(0, 2, "so what we need to do is", "S1"), seg(2, 4, "ship it", "S1")])
    assert [s.text for s in result.segments] == ["So what we need to do is", "ship it."]


def test_refine_fixes_asr_spellings_of_i() -> None:
    result = refine([seg(0, 2, "Ill send it and im sure ive got it", "S1")])
    assert result.segments[0].text == "I'll send it and I'm sure I've got it."


# ---------------------------------------------------------------------------- tasks

SCRIPT = [
    seg(0, 3, "Okay, let's get started.", "S1"),
    seg(3, 7, "Um, I'll send the budget report by Friday.", "S1"),
    seg(7, 11, "Bob, can you review the pull request next Monday?", "S2"),
    seg(11, 12, "Sure, will do.", "S3"),
    seg(12, 15, "Ill update the roadmap tomorrow", "S2"),
    seg(15, 19, "We need to finalize the pricing page by end of week.", "S1"),
    seg(19, 20, "Can you hear me?", "S3"),
    seg(20, 23, "I think the demo went well.", "S2"),
    seg(23, 27, "Let's schedule a follow-up with legal on March 3rd.", "S1"),
    seg(27, 30, "i will draft the announcement email in two days", "S2"),
]


@pytest.fixture(scope="module")
def tasks() -> TasksResult:
    return extract_tasks(SCRIPT, MONDAY)


def _find(tasks: TasksResult, words: str) -> tuple[str | None, str | None, float | None]:
    matches = [t for t in tasks.items if words in t.text.lower()]
    assert len(matches) == 1, f"{words!r} in {[t.text for t in tasks.items]}"
    return matches[0].owner, matches[0].due, matches[0].source_time


def test_planted_commitments_have_owner_due_and_time(tasks: TasksResult) -> None:
    assert _find(tasks, "budget report") == ("S1", "2026-11-27", 3)
    assert _find(tasks, "pull request") == ("Bob", "2026-11-30", 7)
    assert _find(tasks, "roadmap") == ("S2", "2026-11-24", 12)
    assert _find(tasks, "pricing page") == ("team", "2026-11-27", 15)
    assert _find(tasks, "legal") == ("team", "2027-03-03", 23)
    assert _find(tasks, "announcement email") == ("S2", "2026-11-25", 27)


def test_meeting_talk_is_not_a_task(tasks: TasksResult) -> None:
    texts = " | ".join(t.text.lower() for t in tasks.items)
    assert "hear me" not in texts
    assert "get started" not in texts
    assert "demo" not in texts
    assert len(tasks.items) == 6


def test_confidence_orders_patterns(tasks: TasksResult) -> None:
    by_text = {t.text: t.confidence for t in tasks.items}
    named = next(c for text, c in by_text.items() if "pull request" in text)
    team = next(c for text, c in by_text.items() if "legal" in text)
    assert 0 < team < named <= 1


def test_request_answered_by_another_speaker_gets_an_owner() -> None:
    result = extract_tasks(
        [seg(0, 3, "Could you share the deck with the team?", "S1"), seg(3, 4, "Yes, sure.", "S2")],
        MONDAY,
    )
    (item,) = result.items
    assert item.owner == "S2"
    assert item.text == "Share the deck with the team"


@pytest.mark.parametrize(
    ("text", "owner"),
    [
        ("Hey Bob, could you send me the invoice", "Bob"),
        ("So John can you take the notes", "John"),
        ("Alice, please sign the contract", "Alice"),
        ("Okay, Maria will draft the agenda", "Maria"),
        ("I'm going to rewrite the parser", "S1"),
        ("Let's rerun the load test", "team"),
    ],
)
def test_owner_resolution(text: str, owner: str) -> None:
    # nobody answers: the name addressed owns it once it is said again ("Thanks, Bob")
    closing = seg(2, 3, f"Thanks, {owner}.", "S2")
    (item,) = extract_tasks([seg(0, 2, text, "S1"), closing], MONDAY).items
    assert item.owner == owner


@pytest.mark.parametrize(
    "text", ["Hey Bob, could you send me the invoice", "Name, please sign the lease"]
)
def test_a_name_said_once_that_nobody_answers_to_owns_nothing(text: str) -> None:
    (item,) = extract_tasks([seg(0, 2, text, "S1")], MONDAY).items
    assert item.owner is None and item.addressee == text.split(",")[0].split()[-1]


@pytest.mark.parametrize(
    "text", ["let me know if you have questions", "Bob, can you hear me?", "I'll be honest"]
)
def test_not_commitments(text: str) -> None:
    assert extract_tasks([seg(0, 2, text, "S1")], MONDAY).items == []


def test_without_speakers_owner_is_unknown() -> None:
    (item,) = extract_tasks([seg(0, 3, "I will write the tests by tomorrow")], MONDAY).items
    assert item.owner is None
    assert item.due == "2026-11-24"


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("by Friday", "2026-11-27"),
        ("next Monday", "2026-11-30"),
        ("by Monday", "2026-11-30"),
        ("next Friday", "2026-12-04"),
        ("tomorrow", "2026-11-24"),
        ("the day after tomorrow", "2026-11-25"),
        ("by end of day", "2026-11-23"),
        ("by the end of the week", "2026-11-27"),
        ("end of next week", "2026-12-04"),
        ("by the end of the month", "2026-11-30"),
        ("on March 3rd", "2027-03-03"),
        ("by December 1st", "2026-12-01"),
        ("on the fifth of January", "2027-01-05"),
        ("in two weeks", "2026-12-07"),
        ("in 3 days", "2026-11-26"),
        ("on 2026-12-15", "2026-12-15"),
    ],
)
def test_due_dates(phrase: str, expected: str) -> None:
    found = dates.find_due(f"I'll do the review {phrase}", MONDAY)
    assert found is not None
    assert found[0].isoformat() == expected


def test_no_due_date() -> None:
    assert dates.find_due("I'll do the review soon", MONDAY) is None


# ---------------------------------------------------------------------------- summary

DISCUSSION = [
    seg(0, 4, "Good morning everyone, can you hear me?", "S1"),
    seg(4, 6, "Yes, loud and clear.", "S2"),
    seg(
        6, 14, "um so today we need to talk about the pricing page launch and the beta budget", "S1"
    ),
    seg(
        14,
        22,
        "The pricing page still has bugs in the checkout flow and beta users reported "
        "crashes on the checkout page.",
        "S2",
    ),
    seg(
        22, 28, "After the discussion we agreed to delay the pricing page launch by one week.", "S1"
    ),
    seg(28, 34, "Should we hire a contractor for the checkout flow?", "S2"),
    seg(
        34,
        40,
        "No, a contractor would cost too much, we can fix the checkout flow ourselves.",
        "S1",
    ),
    seg(40, 46, "The beta budget stays at ten thousand dollars for the quarter.", "S2"),
    seg(46, 50, "Who will own the customer emails for the launch?", "S1"),
]


def test_summary_fields_are_filled_and_valid() -> None:
    result = summarize(DISCUSSION)
    SummaryResult.model_validate(result.model_dump())
    assert result.title and result.summary
    assert 3 <= len(result.key_points) <= 8
    assert "pricing" in result.title.lower()
    assert all("hear me" not in p for p in result.key_points)


def test_summary_includes_the_planted_decision() -> None:
    result = summarize(DISCUSSION)
    assert any("agreed to delay the pricing page launch" in d for d in result.decisions)


def test_open_questions_are_the_unanswered_ones() -> None:
    result = summarize(DISCUSSION)
    assert result.open_questions == ["Who will own the customer emails for the launch?"]


def test_title_hint_wins_and_empty_transcript_is_valid() -> None:
    assert summarize(DISCUSSION, title_hint="  Weekly sync ").title == "Weekly sync"
    empty = summarize([])
    assert empty.title and empty.summary
    assert empty.key_points == empty.decisions == empty.open_questions == []


def test_unpunctuated_transcript_still_splits_into_sentences() -> None:
    text = (
        "okay so the first thing is the database migration which is running late because the "
        "vendor changed the schema again so we decided to postpone the cutover to next month "
        "and the second thing is hiring we have two open roles and three candidates in the pipe"
    )
    result = summarize([seg(0, 30, text, "S1")])
    assert len(result.key_points) >= 2
    assert any("decided to postpone the cutover" in d for d in result.decisions)


def test_a_sentence_split_across_segments_keeps_its_due_date() -> None:
    # whisper broke the segment mid-sentence (seen on a chunk of the espeak meeting)
    split = [
        seg(30.0, 36.9, "Me are the tests ready? Most of them are, I'll send the report"),
        seg(36.9, 43.1, "by Friday. Bob, can you update the roadmap by next Monday?"),
        seg(43.1, 45.0, "Yes, I can do that."),
        seg(45.0, 47.0, "Thanks, Bob."),
    ]
    items = {i.text: i for i in extract_tasks(split, MONDAY).items}
    report = items["Send the report by Friday"]
    assert report.due == "2026-11-27"
    # placed where "I'll" is in its segment's text, not at the segment's start (another
    # speaker's question): the owner is whoever speaks then
    assert report.source_time is not None and 34.0 < report.source_time < 36.0
    assert items["Update the roadmap by next Monday"].owner == "Bob"


def test_finished_sentences_or_another_speaker_are_not_joined() -> None:
    done = [seg(0, 3, "I'll send the report.", "S1"), seg(3, 5, "By Friday we ship.", "S1")]
    assert [i.due for i in extract_tasks(done, MONDAY).items] == [None]
    other = [seg(0, 3, "I'll send the report", "S1"), seg(3, 5, "by Friday, right?", "S2")]
    assert [i.due for i in extract_tasks(other, MONDAY).items] == [None]
    late = [seg(0, 3, "I'll send the report", "S1"), seg(9, 11, "by Friday then", "S1")]
    assert [i.due for i in extract_tasks(late, MONDAY).items] == [None]

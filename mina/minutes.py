"""Meeting notes: what a person reads after a meeting, built once for `mina process --format md`
and `GET /api/conversations/{id}/notes`.

`build` gathers the conversation's shown results (speakers by their names) into one JSON-ready
document: title, date, duration, language, summary, decisions, open questions, action items
(owner, due date, time), a speakers table and the transcript in turns. `markdown` writes that
document as Markdown. Parts still being processed are listed in `pending`, never invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from mina import languages, results
from mina.models import Conversation
from mina.transcript import Segment

#: Parts of the notes and the task each comes from.
PARTS = {"summary": "summary", "action items": "tasks", "speakers": "analytics"}


def build(session: Session, conv: Conversation) -> dict[str, Any]:
    """The notes of `conv` as a JSON-ready dict (the API's `format=json`)."""
    segments, complete = results.transcript(session, conv)
    summary = results.shown(session, conv, "summary")
    tasks = results.shown(session, conv, "tasks")
    analytics = results.shown(session, conv, "analytics")
    found = {"summary": summary, "tasks": tasks, "analytics": analytics}
    pending = [part for part, task in PARTS.items() if found[task] is None]
    if not complete:
        pending.append("transcript")
    duration = conv.duration
    if duration is None and analytics is not None:
        duration = float(analytics["duration"])
    if duration is None and segments:
        duration = max(s.end for s in segments)
    notices = [(tasks or {}).get("notice"), *((analytics or {}).get("notices") or [])]
    return {
        "conversation_id": conv.id,
        "title": conv.title or (summary or {}).get("title") or "Meeting",
        "date": conv.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_seconds": round(duration, 1) if duration is not None else None,
        "language": conv.language,
        "status": conv.status,
        "processing_status": conv.processing_status,
        "pending": pending,
        "notices": [n for n in notices if n],
        "summary": (summary or {}).get("summary"),
        "key_points": (summary or {}).get("key_points", []),
        "decisions": (summary or {}).get("decisions", []),
        "open_questions": (summary or {}).get("open_questions", []),
        "action_items": [_item(it) for it in (tasks or {}).get("items", [])],
        "action_note": (tasks or {}).get("notice"),
        "speakers": [_speaker(sp) for sp in (analytics or {}).get("speakers", [])],
        "transcript": turns(segments),
    }


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": item["text"],
        "owner": item.get("owner"),
        "due": item.get("due"),
        "time": item.get("source_time"),
    }


def _speaker(sp: dict[str, Any]) -> dict[str, Any]:
    keys = ("speaker", "talk_seconds", "share", "words", "turns", "questions")
    return {k: sp[k] for k in keys}


def turns(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """Consecutive segments of one speaker joined into a turn: start, end, speaker, text."""
    out: list[dict[str, Any]] = []
    for seg in segments:
        text = seg.text.strip()
        if not text:
            continue
        if out and out[-1]["speaker"] == seg.speaker:
            out[-1]["end"] = round(seg.end, 2)
            out[-1]["text"] += " " + text
        else:
            turn = {"start": round(seg.start, 2), "end": round(seg.end, 2), "text": text}
            out.append({**turn, "speaker": seg.speaker})
    return out


def clock(seconds: float | None) -> str:
    """mm:ss, or h:mm:ss from an hour on."""
    if seconds is None:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown(notes: dict[str, Any]) -> str:
    """The notes as Markdown a person reads (the API's `format=md`, `mina process --format md`)."""
    out = [f"# {notes['title']}", ""]
    facts = [("Date", notes["date"]), ("Duration", clock(notes["duration_seconds"]))]
    if notes.get("language"):
        facts.append(("Language", f"{languages.name(notes['language'])} ({notes['language']})"))
    facts.append(("Speakers", str(len({t["speaker"] for t in notes["transcript"]}))))
    out += [f"- **{name}:** {value}" for name, value in facts if value]
    if notes["pending"]:
        out.append(f"- **Still processing:** {', '.join(notes['pending'])}")
    out.append("")
    out += [f"> {n}.\n" for n in notes["notices"] if n != notes["action_note"]]
    if notes["summary"]:
        out += ["## Summary", "", notes["summary"], ""]
    if notes["key_points"]:
        out += ["## Key points", "", *[f"- {x}" for x in notes["key_points"]], ""]
    if "summary" not in notes["pending"]:  # said even when there are none
        for heading, key in (("Decisions", "decisions"), ("Open questions", "open_questions")):
            out += [f"## {heading}", "", *([f"- {x}" for x in notes[key]] or ["None."]), ""]
    if notes["action_items"]:
        out += ["## Action items", "", "| action | owner | due | time |", "|---|---|---|---|"]
        for it in notes["action_items"]:
            row = (it["text"], it["owner"], it["due"], clock(it["time"]))
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
        out.append("")
    elif "action items" not in notes["pending"]:
        out += ["## Action items", "", notes["action_note"] or "None found.", ""]
    if notes["speakers"]:
        out += [
            "## Speakers",
            "",
            "| speaker | talk time | share | words | turns | questions |",
            "|---|---|---|---|---|---|",
        ]
        for sp in notes["speakers"]:
            cells = (
                sp["speaker"],
                clock(sp["talk_seconds"]),
                f"{sp['share']:.0%}",
                sp["words"],
                sp["turns"],
                sp["questions"],
            )
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    out += ["## Transcript", ""]
    for turn in notes["transcript"]:
        who = f" {turn['speaker']}" if turn["speaker"] else ""
        out += [f"**{clock(turn['start'])}{who}:** {turn['text']}", ""]
    if not notes["transcript"]:
        out += ["No speech was transcribed.", ""]
    return "\n".join(out).rstrip() + "\n"

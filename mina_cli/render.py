"""A readable result in the terminal: summary, action items, talk share, transcript."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mina.minutes import turns
from mina.transcript import segments_from_json


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:02d}:{s:02d}"


def render(result: dict[str, Any], console: Console, name: str) -> None:
    detail = result.get("status_detail") or {}
    console.rule(f"[bold]{name}[/]")
    console.print(
        f"transcription [bold]{result['status']}[/], post-processing "
        f"[bold]{result['processing_status']}[/], conversation {result['conversation_id']}"
    )
    for chunk in detail.get("failed_chunks", []):
        console.print(f"[red]chunk {chunk['index']} failed:[/] {chunk['error']}")
    for task, info in (detail.get("tasks") or {}).items():
        if info.get("status") == "failed":
            console.print(f"[red]{task} failed:[/] {info.get('error')}")

    summary = result.get("summary")
    if summary:
        body = summary.get("summary", "")
        for heading, key in (
            ("Key points", "key_points"),
            ("Decisions", "decisions"),
            ("Open questions", "open_questions"),
        ):
            if summary.get(key):
                body += f"\n\n[bold]{heading}[/]\n" + "\n".join(f"• {p}" for p in summary[key])
        console.print(Panel(body, title=summary.get("title") or "Summary", expand=True))

    items = (result.get("tasks") or {}).get("items") or []
    if items:
        table = Table(title="Action items", expand=True)
        for col in ("action", "owner", "due", "at"):
            table.add_column(col)
        for it in items:
            at = it.get("source_time")
            table.add_row(
                it["text"],
                it.get("owner") or "-",
                it.get("due") or "-",
                _clock(at) if at is not None else "-",
            )
        console.print(table)

    analytics = result.get("analytics")
    if analytics and analytics.get("speakers"):
        table = Table(
            title=f"Speakers ({_clock(analytics.get('duration', 0))} meeting, "
            f"{analytics.get('silence_seconds', 0):.0f}s silence)",
            expand=True,
        )
        for col in ("speaker", "talk share", "talk time", "words", "wpm", "turns", "questions"):
            table.add_column(col)
        for sp in analytics["speakers"]:
            table.add_row(
                sp["speaker"],
                f"{100 * sp['share']:.0f}%",
                _clock(sp["talk_seconds"]),
                str(sp["words"]),
                f"{sp['wpm']:.0f}",
                str(sp["turns"]),
                str(sp["questions"]),
            )
        console.print(table)

    console.print("[bold]Transcript[/]")
    # In turns, as the pages and the Markdown notes show it: a speaker's consecutive segments
    # are one paragraph, not a line per Whisper segment cut mid-sentence.
    segments = segments_from_json(result["transcript"]["segments"])
    for turn in turns(segments):
        who = f"[cyan]{turn['speaker']}[/]: " if turn.get("speaker") else ""
        console.print(f"[dim]{_clock(turn['start'])}[/] {who}{turn['text']}", highlight=False)

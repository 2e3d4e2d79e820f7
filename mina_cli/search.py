"""`mina search`: search what was said in every revealed meeting of the configured database, as
an operator would (docs/memory.md); `--reindex` (re)builds the index of revealed conversations,
e.g. those revealed before search existed."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime

import click
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from mina import db
from mina.errors import MinaError
from mina.memory import index, search
from mina.models import Conversation
from mina.settings import get_settings

_MARK = re.compile(r"<mark>(.*?)</mark>")


def _moment(value: str | None, *, end: bool) -> datetime | None:
    if value is None:
        return None
    try:
        return search.moment(value, end=end)
    except (ValueError, OverflowError) as exc:
        raise click.BadParameter(str(exc)) from exc


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


def reindex() -> int:
    """Index every revealed conversation again; returns how many."""
    with db.session_scope() as s:
        ids = list(s.scalars(select(Conversation.id).where(Conversation.revealed_at.is_not(None))))
    for cid in ids:
        with db.session_scope() as s:
            conv = s.get(Conversation, cid)
            if conv is not None:
                index.write(s, conv)
    return len(ids)


@click.command("search")
@click.argument("words", nargs=-1)
@click.option("--speaker", help="only what this speaker said (name or label)")
@click.option("--from", "since", help="meetings from this date (YYYY-MM-DD) or time")
@click.option("--to", "until", help="meetings up to this date (inclusive) or before this time")
@click.option("--conversation", help="one conversation's id")
@click.option("--limit", type=click.IntRange(1, search.LIMIT_MAX), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the hits as JSON")
@click.option("--reindex", "rebuild", is_flag=True, help="index again, then search")
def search_command(
    words: tuple[str, ...],
    speaker: str | None,
    since: str | None,
    until: str | None,
    conversation: str | None,
    limit: int,
    as_json: bool,
    rebuild: bool,
) -> None:
    """Search every meeting for WORDS: words all match, "a phrase", `or`, -word excludes."""
    settings = get_settings()
    db.configure(settings.resolved_database_url, settings)
    if rebuild:
        click.echo(f"{reindex()} conversation(s) indexed", err=True)
        if not words:
            return
    query = search.Query(
        text=" ".join(words),
        speaker=speaker,
        since=_moment(since, end=False),
        until=_moment(until, end=True),
        conversation_id=conversation,
        limit=limit,
    )
    try:
        with db.session_scope() as s:
            hits, more = search.search(s, query)
    except MinaError as exc:
        raise click.UsageError(exc.message) from exc
    if as_json:
        click.echo(json.dumps({"hits": [h.as_json() for h in hits], "more": more}, indent=2))
        return
    console = Console(highlight=False)
    if not hits:
        console.print("no match", style="dim")
    for h in hits:
        snippet = _rich(h.snippet)
        console.print(
            f"[dim]{h.meeting_at:%Y-%m-%d %H:%M}[/] {escape(h.title or h.conversation_id)} "
            f"[cyan]{_clock(h.start)}[/] [bold]{escape(h.speaker or '?')}[/]: {snippet}"
        )
        console.print(f"  [dim]{h.conversation_id} at {h.start:.1f}s[/]")
    if more:
        console.print(f"more hits: --limit above {limit}", style="dim")


def _rich(snippet: str) -> str:
    """The HTML snippet as rich markup: marked words highlighted, everything else literal."""
    parts = _MARK.split(snippet)  # odd places: the marked words
    return "".join(
        f"[bold yellow]{escape(html.unescape(p))}[/]" if i % 2 else escape(html.unescape(p))
        for i, p in enumerate(parts)
    )

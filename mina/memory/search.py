"""Searching what was said (docs/memory.md): full text over the indexed utterances.

PostgreSQL: each row's `tsvector` was made with its conversation's configuration, so a query is
parsed once per configuration (`websearch_to_tsquery`) and a row matches the query of its own
configuration: one GIN lookup per configuration, ORed. SQLite: FTS5 (porter stemming) with the
same query syntax translated: words, "quoted phrases", `or`, `-word` to exclude.
Hits are ranked by relevance (ts_rank / bm25), then newest meeting first; the ranking is among
the `POOL` newest matches, so a word said in every meeting costs no more than a rare one.
The snippet is HTML with the matched words in `<mark>` and everything else escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, cast, func, or_, select, text
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mina.errors import ValidationError
from mina.memory.index import config_for
from mina.memory.models import AudioErasure, Utterance
from mina.models import Conversation

QUERY_MAX = 200
LIMIT_MAX = 100
OFFSET_MAX = 10_000
#: relevance is ranked among at most this many newest matches (docs/memory.md)
POOL = 300
_START, _STOP = "\x02", "\x03"
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, MaxWords=40, MinWords=20, ShortWord=2"
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w", re.UNICODE)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Query:
    text: str
    speaker: str | None = None
    since: datetime | None = None  # meetings from this moment on
    until: datetime | None = None  # meetings before this moment
    conversation_id: str | None = None
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class Hit:
    conversation_id: str
    title: str
    meeting_at: datetime
    position: int
    speaker: str | None  # as results show it (the name when one was given or learned)
    speaker_label: str | None
    start: float
    end: float
    text: str
    snippet: str  # HTML: matched words in <mark>, the rest escaped
    audio: bool  # the merged audio is still kept (not erased by retention)

    def as_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "title": self.title,
            "meeting_at": self.meeting_at.isoformat(),
            "position": self.position,
            "speaker": self.speaker,
            "speaker_label": self.speaker_label,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "snippet": self.snippet,
            "audio": self.audio,
        }


def moment(value: str, *, end: bool) -> datetime:
    """An ISO date or date-time as naive UTC; a date given as an end (`to`) means the end of
    that day. Raises ValueError (or OverflowError at the end of the calendar)."""
    try:
        if _DATE_ONLY.fullmatch(value):
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("an ISO 8601 date (2026-12-01) or date-time") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def validate(q: Query) -> Query:
    if not q.text.strip():
        raise ValidationError("q: give the words to search for", code="invalid_query")
    if len(q.text) > QUERY_MAX:
        raise ValidationError(f"q: at most {QUERY_MAX} characters", code="invalid_query")
    if not _WORD.search(q.text):
        raise ValidationError("q: no word to search for", code="invalid_query")
    if not 1 <= q.limit <= LIMIT_MAX or not 0 <= q.offset <= OFFSET_MAX:
        raise ValidationError("limit or offset out of range", code="invalid_query")
    if q.since and q.until and q.since >= q.until:
        raise ValidationError("from must be before to", code="invalid_query")
    return q


def search(session: Session, q: Query) -> tuple[list[Hit], bool]:
    """One page of hits and whether there are more."""
    validate(q)
    if session.get_bind().dialect.name == "postgresql":
        found = _postgres(session, q)
    else:
        found = _sqlite(session, q)
    more = len(found) > q.limit
    found = found[: q.limit]
    return _hits(session, found), more


def _filters(q: Query) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if q.conversation_id:
        out.append(Utterance.conversation_id == q.conversation_id)
    if q.speaker:
        who = " ".join(q.speaker.split())
        out.append(or_(func.lower(Utterance.speaker_name) == who.lower(), Utterance.speaker == who))
    if q.since:
        out.append(Utterance.meeting_at >= q.since)
    if q.until:
        out.append(Utterance.meeting_at < q.until)
    return out


def configs_in_use(session: Session, q: Query) -> list[str]:
    """The text search configurations rows of this search may carry: those of the languages of
    the conversations searched (a scan of `conversation`, not of the utterances)."""
    langs = select(Conversation.language).where(Conversation.revealed_at.is_not(None))
    if q.conversation_id:
        langs = langs.where(Conversation.id == q.conversation_id)
    return sorted({config_for(lang) for lang in session.scalars(langs.distinct())})


def _postgres(session: Session, q: Query) -> list[tuple[int, str]]:
    def tsquery(config: Any) -> Any:
        return func.websearch_to_tsquery(cast(config, REGCONFIG), q.text)

    configs = configs_in_use(session, q)
    if not configs:
        return []
    columns = (Utterance.id, Utterance.tsv, Utterance.config, Utterance.meeting_at)

    def matching(tsv: Any, config: Any) -> Any:
        return or_(*(and_(config == c, tsv.op("@@")(tsquery(c))) for c in configs))

    if q.conversation_id:
        # One conversation has few utterances: all are read through the conversation index
        # (OFFSET 0 keeps the planner from matching the whole table first) and all matches
        # ranked.
        own = select(*columns).where(*_filters(q)).offset(0).subquery()
        pool = select(own).where(matching(own.c.tsv, own.c.config)).subquery()
    else:
        # Relevance among the newest matches: a very common word is ranked over the newest
        # POOL utterances that have it (found walking the date index), never over all of them.
        pool = (
            select(*columns)
            .where(matching(Utterance.tsv, Utterance.config), *_filters(q))
            .order_by(Utterance.meeting_at.desc(), Utterance.id)
            .limit(max(POOL, q.offset + q.limit + 1))
            .subquery()
        )
    rank = func.ts_rank(pool.c.tsv, tsquery(pool.c.config)).label("rank")
    page = (
        select(pool.c.id, rank, pool.c.meeting_at)
        .order_by(rank.desc(), pool.c.meeting_at.desc(), pool.c.id)
        .limit(q.limit + 1)
        .offset(q.offset)
        .subquery()
    )
    headline = func.ts_headline(
        cast(Utterance.config, REGCONFIG), Utterance.text, tsquery(Utterance.config), _HEADLINE
    )
    rows = session.execute(
        select(Utterance.id, headline)
        .join(page, page.c.id == Utterance.id)
        .order_by(page.c.rank.desc(), page.c.meeting_at.desc(), Utterance.id)
    ).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def fts5_query(raw: str) -> str:
    """The web-search syntax PostgreSQL accepts, as an FTS5 query: words and "phrases" must all
    match, `or` between them gives alternatives, `-word` excludes. Every term is quoted, so
    nothing the user types is FTS5 syntax."""
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    for m in _TOKEN.finditer(raw):
        negated = m.group(1) == "-" or (m.group(3) or "").startswith("-")
        term = m.group(2) if m.group(2) is not None else (m.group(3) or "").lstrip("-")
        if m.group(3) and m.group(3).lower() == "or":
            groups.append(([], []))
            continue
        if not _WORD.search(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        groups[-1][1 if negated else 0].append(quoted)
    parts = []
    for positive, negative in groups:
        if not positive:
            continue
        part = " AND ".join(positive)
        if negative:
            part = f"({part}) NOT ({' OR '.join(negative)})"
        parts.append(f"({part})")
    return " OR ".join(parts)


def _sqlite(session: Session, q: Query) -> list[tuple[int, str]]:
    match = fts5_query(q.text)
    if not match:
        return []
    conditions = ["utterance_fts MATCH :match"]
    params: dict[str, Any] = {"match": match, "limit": q.limit + 1, "offset": q.offset}
    if q.conversation_id:
        # A conversation's rows are written together: their ids are one range, which FTS5
        # can restrict itself to instead of walking every match of the words.
        lo, hi = session.execute(
            text("SELECT min(id), max(id) FROM utterance WHERE conversation_id = :cid"),
            {"cid": q.conversation_id},
        ).one()
        if lo is None:
            return []
        conditions.append("utterance_fts.rowid BETWEEN :lo AND :hi")
        conditions.append("u.conversation_id = :cid")
        params.update(cid=q.conversation_id, lo=lo, hi=hi)
    if q.speaker:
        who = " ".join(q.speaker.split())
        conditions.append("(lower(u.speaker_name) = :who_lower OR u.speaker = :who)")
        params.update(who=who, who_lower=who.lower())
    if q.since:
        conditions.append("u.meeting_at >= :since")
        params["since"] = q.since
    if q.until:
        conditions.append("u.meeting_at < :until")
        params["until"] = q.until
    where = " AND ".join(conditions)
    source = "FROM utterance_fts JOIN utterance u ON u.id = utterance_fts.rowid"
    # Relevance among the newest matches, as on PostgreSQL: FTS5 walks its matches from the
    # highest rowid (the latest indexed) down, so finding the POOL-th newest is cheap, and bm25
    # is computed only from there on.
    params["pool"] = max(POOL, q.offset + q.limit + 1)
    floor = session.execute(
        text(
            f"SELECT min(id) FROM (SELECT u.id AS id {source} WHERE {where} "
            "ORDER BY utterance_fts.rowid DESC LIMIT :pool)"
        ),
        params,
    ).scalar()
    if floor is None:
        return []
    params["floor"] = floor
    sql = text(
        f"SELECT u.id, snippet(utterance_fts, 0, char(2), char(3), ' … ', 24) {source} "
        f"WHERE {where} AND utterance_fts.rowid >= :floor "
        "ORDER BY bm25(utterance_fts), u.meeting_at DESC, u.id LIMIT :limit OFFSET :offset"
    )
    return [(int(r[0]), str(r[1])) for r in session.execute(sql, params).all()]


def _hits(session: Session, found: list[tuple[int, str]]) -> list[Hit]:
    if not found:
        return []
    ids = [i for i, _ in found]
    rows = {
        u.id: (u, title, key, erased)
        for u, title, key, erased in session.execute(
            select(
                Utterance,
                Conversation.title,
                Conversation.merged_audio_key,
                AudioErasure.conversation_id,
            )
            .join(Conversation, Conversation.id == Utterance.conversation_id)
            .outerjoin(AudioErasure, AudioErasure.conversation_id == Utterance.conversation_id)
            .where(Utterance.id.in_(ids))
        ).all()
    }
    hits = []
    for uid, snippet in found:
        if uid not in rows:
            continue  # erased between the two queries
        u, title, key, erased = rows[uid]
        hits.append(
            Hit(
                conversation_id=u.conversation_id,
                title=title,
                meeting_at=u.meeting_at,
                position=u.position,
                speaker=u.speaker_name,
                speaker_label=u.speaker,
                start=u.start,
                end=u.end,
                text=u.text,
                snippet=_marked(snippet),
                audio=bool(key) and erased is None,
            )
        )
    return hits


def _marked(snippet: str) -> str:
    return html.escape(snippet, quote=False).replace(_START, "<mark>").replace(_STOP, "</mark>")

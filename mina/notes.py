"""Speakers' names and action items' owners: decided once after diarization, renamed by people.

`settle` runs when every post-processing task is terminal, just before the reveal (and again
before the reveal of an operator retry): on the diarized transcript (the raw one when diarize
failed) it learns names from the conversation (`mina.insights.names`) into
`conversation.speaker_names`, keeping names people gave, and decides each action item's owner
(`mina.insights.owners`), stored in the tasks row; a summary the offline rules wrote is made
again on the diarized transcript (speakers tell a turn from a pause). Its inputs are the stored
results, so running it twice gives the same rows.

`rename` stores a name given through the API (source "user", confidence 1) and records a
`speaker_renamed` event. Shown results carry the names (`mina.results.shown`): the transcript's
and words' speakers, analytics' speakers and timeline, and action items' owners.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.orm import Session

from mina import events
from mina.db import session_scope
from mina.errors import Conflict, NotFound, NotReady, ValidationError
from mina.insights import names as names_mod
from mina.insights import owners
from mina.insights import summary as summary_mod
from mina.insights.schemas import TasksResult
from mina.models import Conversation, Event, PostTask
from mina.pipeline.task_state import DONE
from mina.providers.language import rules_only
from mina.settings import Settings, get_settings
from mina.transcript import Segment, segments_from_json

log = logging.getLogger(__name__)

NAME_MAX = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
USER = "user"
LEARNED = "conversation"


def shown_names(conv: Conversation) -> dict[str, str]:
    """Speaker label -> the name shown for it: given names, and learned ones that are sure."""
    out = {}
    for label, entry in (conv.speaker_names or {}).items():
        if entry.get("source") == USER or entry.get("confidence", 0) >= names_mod.SHOWN:
            out[label] = str(entry["name"])
    return out


def _row(session: Session, conversation_id: str, name: str) -> PostTask | None:
    return session.scalars(
        select(PostTask).where(PostTask.conversation_id == conversation_id, PostTask.name == name)
    ).first()


def _diarized(session: Session, conversation_id: str) -> list[Segment] | None:
    row = _row(session, conversation_id, "diarize")
    if row is None or row.status != DONE or not row.result:
        return None
    return segments_from_json(row.result.get("segments"))


def _by_rules(session: Session, conversation_id: str, task: str, settings: Settings) -> bool:
    """Whether the offline rules wrote `task`'s result: no model is configured, or the ledger
    holds the model's fallback for it."""
    if rules_only(settings):
        return True
    fallbacks = session.scalars(
        select(Event.payload).where(
            Event.conversation_id == conversation_id, Event.type == "language_fallback"
        )
    )
    return any((payload or {}).get("task") == task for payload in fallbacks)


def _summarize_again(
    session: Session, conv: Conversation, segments: list[Segment], settings: Settings
) -> None:
    """The rules' summary made again on the diarized transcript. The summary task runs beside
    diarization on the raw transcript, where a sentence cut at a turn cannot be told from one
    cut inside a voice: joined, two people's words made one key point. The rules are cheap
    (~40 ms for ten minutes) and give the same answer twice; a model's summary is kept."""
    row = _row(session, conv.id, "summary")
    if row is None or row.status != DONE or row.result is None:
        return
    if not _by_rules(session, conv.id, "summary", settings):
        return
    again = summary_mod.summarize(segments, conv.title or None).model_dump(mode="json")
    if again != row.result:
        row.result = again


def settle(conversation_id: str, settings: Settings | None = None) -> None:
    """Learn names and decide owners on the final transcript; stores both. A summary the rules
    wrote is made again on the diarized transcript (`_summarize_again`)."""
    from mina import results  # results reads what this module stores

    settings = settings or get_settings()
    with session_scope() as session:
        tasks = session.scalars(
            select(PostTask)
            .where(PostTask.conversation_id == conversation_id, PostTask.name == "tasks")
            .with_for_update()
        ).first()
        segments = _diarized(session, conversation_id)
        conv = session.get(Conversation, conversation_id)
        if conv is None:
            return
        if segments is not None:
            _summarize_again(session, conv, segments, settings)
        else:
            segments = results.raw_segments(session, conversation_id)
        stored = dict(conv.speaker_names or {})
        learned = {
            n.speaker: {"name": n.name, "confidence": n.confidence, "source": LEARNED}
            for n in names_mod.learn(segments)
        }
        given = {k: v for k, v in stored.items() if v.get("source") == USER}
        taken = {v["name"] for v in given.values()}
        merged = {k: v for k, v in learned.items() if k not in given and v["name"] not in taken}
        merged.update(given)
        if merged != stored:
            conv.speaker_names = merged
        if tasks is None or tasks.status != DONE or tasks.result is None:
            return
        try:
            found = TasksResult.model_validate(tasks.result)
        except pydantic.ValidationError as exc:  # a row from another version: shown as stored
            log.error(
                "conversation %s: tasks result unreadable, owners not settled: %s",
                conversation_id,
                exc.error_count(),
            )
            return
        items = owners.settle(found.items, segments, shown_names(conv))
        settled = TasksResult(items=items, notice=found.notice).model_dump(mode="json")
        if settled != tasks.result:
            tasks.result = settled
    log.info(
        "conversation %s: owners settled on %d segments, %d name(s)",
        conversation_id,
        len(segments),
        len(merged),
    )


def speakers(session: Session, conv: Conversation) -> list[dict[str, Any]]:
    """Every speaker label with its name, confidence and where the name came from."""
    labels = _labels(session, conv)
    entries = conv.speaker_names or {}
    out = []
    for label in sorted(labels | set(entries)):
        entry = entries.get(label) or {}
        out.append(
            {
                "speaker": label,
                "name": entry.get("name"),
                "confidence": entry.get("confidence"),
                "source": entry.get("source"),
                "shown": shown_names(conv).get(label, label),
            }
        )
    return out


def _labels(session: Session, conv: Conversation) -> set[str]:
    segments = _diarized(session, conv.id)
    if segments is None:
        raise NotReady("speakers are not known yet (diarization has not finished)")
    found = {s.speaker for s in segments if s.speaker and s.speaker != "Unknown"}
    found |= {w.speaker for s in segments for w in s.words or [] if w.speaker}
    return {label for label in found if label != "Unknown"}


def rename(session: Session, conv: Conversation, speaker: str, name: str) -> dict[str, Any]:
    """Give `speaker` (its label or the name it is shown by) the name `name`."""
    conv = session.get(Conversation, conv.id, with_for_update=True, populate_existing=True) or conv
    clean = " ".join(name.split())
    if not clean or len(clean) > NAME_MAX or _CONTROL.search(name):
        raise ValidationError(f"a name is 1 to {NAME_MAX} printable characters")
    labels = _labels(session, conv)
    shown = shown_names(conv)
    label = (
        speaker if speaker in labels else next((k for k, v in shown.items() if v == speaker), None)
    )
    if label is None:
        raise NotFound(f"no speaker {speaker!r} in this conversation")
    if any(v == clean and k != label for k, v in shown.items()):
        raise Conflict(f"another speaker is already called {clean!r}", code="name_taken")
    previous = shown.get(label, label)
    entries = dict(conv.speaker_names or {})
    entries[label] = {"name": clean, "confidence": 1.0, "source": USER}
    conv.speaker_names = entries
    payload = {"speaker": label, "name": clean, "previous": previous}
    events.record(session, conv.id, "speaker_renamed", payload)
    log.info("conversation %s: speaker %s renamed", conv.id, label)
    return payload

"""Known speakers (docs/memory.md): voiceprints of named people, recognized in later meetings.

- `remember`: a speaker named with consent (`PUT .../speakers/{label}` with `"remember": true`)
  becomes a voiceprint of that person: the voice diarization kept for the label
  (`DiarizationResult.voices`, stored in the diarize task's result).
- `recognize`: at the reveal, after names are learned (`mina.notes.settle`), each speaker whose
  voice is at least THRESHOLD similar to a consenting person's best voiceprint is shown by the
  person's name; the others keep what they had ("Speaker N" or a learned name). Precedence:
  a name given in the meeting (source "user") > a voiceprint > a learned name.
- `carry_back`: with `"apply_to_past": true` (operators), the person's name goes to every past
  meeting's speaker whose stored voice matches, and replaces the older name of that person
  wherever it was given by a voiceprint.
- `erase`: a person's voiceprints, matches and every name that came from them.

A `speaker_names` entry given by a voiceprint is `{"name", "confidence": similarity,
"source": "voiceprint", "person": id}`; one named with consent is a "user" entry with
`"person": id`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mina import events
from mina.db import session_scope
from mina.errors import Conflict, Forbidden, NotFound, ValidationError
from mina.memory import index as search_index
from mina.memory.people import CARRIED, MATCHED, NAMED, Person, VoiceMatch, Voiceprint
from mina.models import Conversation, PostTask
from mina.pipeline.task_state import DONE

log = logging.getLogger(__name__)

#: Cosine between a meeting speaker's voice and a person's best voiceprint at or above which the
#: speaker is shown by the person's name. From `bench/speakers.py --calibrate` (2026-12-02): the
#: smallest threshold with <= 1 % false accepts over 743 different-voice pairs of stored voices
#: (10 meetings of real voices from bench/corpus.py, 7 espeak-ng meetings, diarized as Mina
#: does): 0.87, FAR 0.94 %, FRR 0 % of 82 same-voice pairs (the lowest was 0.956).
THRESHOLD = 0.87
SOURCE = "voiceprint"
USER = "user"

F32 = npt.NDArray[np.float32]


def voices_of(session: Session, conversation_id: str) -> dict[str, F32]:
    """The voices diarization kept for the conversation's speakers ({} when none: provider
    labels, a diarization from before voices were kept, or diarize not done)."""
    row = session.scalars(
        select(PostTask).where(
            PostTask.conversation_id == conversation_id, PostTask.name == "diarize"
        )
    ).first()
    if row is None or row.status != DONE or not row.result:
        return {}
    return _vectors(row.result.get("voices"))


def _vectors(stored: Any) -> dict[str, F32]:
    """Stored voices as unit vectors; anything unreadable is no voice."""
    if not isinstance(stored, dict):
        return {}
    out = {}
    for label, values in stored.items():
        try:
            vector = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):  # a result from another version: no voice
            continue
        norm = float(np.linalg.norm(vector)) if vector.ndim == 1 else 0.0
        if norm > 0:
            out[str(label)] = vector / norm
    return out


def _prints(session: Session, person_ids: list[str] | None = None) -> dict[str, F32]:
    """Consenting people's voiceprints as one matrix each (rows: one per meeting)."""
    query = select(Voiceprint.person_id, Voiceprint.embedding).join(
        Person, Person.id == Voiceprint.person_id
    )
    query = query.where(Person.consent.is_(True))
    if person_ids is not None:
        query = query.where(Voiceprint.person_id.in_(person_ids))
    rows: dict[str, list[F32]] = {}
    for person_id, embedding in session.execute(query):
        vector = np.asarray(embedding, dtype=np.float32)
        if rows.get(person_id) and rows[person_id][0].shape != vector.shape:
            continue  # a voiceprint of another model: the person's first ones are used
        rows.setdefault(person_id, []).append(vector / max(float(np.linalg.norm(vector)), 1e-12))
    return {p: np.stack(v) for p, v in rows.items()}


def _best_pairs(voices: dict[str, F32], prints: dict[str, F32]) -> list[tuple[str, str, float]]:
    """(label, person, similarity) at or above THRESHOLD, one-to-one, most similar first; a
    person's similarity is to their best voiceprint."""
    scored = [
        (label, person, float((rows @ vector).max()))
        for label, vector in voices.items()
        for person, rows in prints.items()
        if rows.shape[1] == vector.shape[0]  # a voice of another model is never compared
    ]
    out, labels, people = [], set(), set()
    for label, person, sim in sorted(scored, key=lambda x: -x[2]):
        if sim >= THRESHOLD and label not in labels and person not in people:
            out.append((label, person, sim))
            labels.add(label)
            people.add(person)
    return out


def _set_match(
    session: Session, conv_id: str, label: str, person: str, sim: float, how: str
) -> None:
    row = session.get(VoiceMatch, (conv_id, label))
    if row is None:
        session.add(
            VoiceMatch(
                conversation_id=conv_id, speaker=label, person_id=person, similarity=sim, how=how
            )
        )
    else:
        row.person_id, row.similarity, row.how = person, sim, how


def _apply(
    entries: dict[str, Any], label: str, name: str, person: str, sim: float
) -> dict[str, Any] | None:
    """`entries` with `label` named by a voiceprint, or None when a given name keeps it (the
    label's own, or the same name given to another speaker). A learned entry elsewhere with the
    same name is dropped: two speakers are never shown by one name."""
    mine = entries.get(label) or {}
    if mine.get("source") == USER:
        return None
    if any(
        k != label and v.get("source") == USER and v.get("name") == name for k, v in entries.items()
    ):
        return None
    out = {k: v for k, v in entries.items() if k == label or v.get("name") != name}
    out[label] = {"name": name, "confidence": round(sim, 3), "source": SOURCE, "person": person}
    return out


def recognize(conversation_id: str) -> int:
    """Name the speakers whose voice matches a consenting person's voiceprint (before the
    reveal, after `mina.notes.settle`). Returns how many were named; runs again the same."""
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id, with_for_update=True)
        if conv is None:
            return 0
        voices = voices_of(session, conversation_id)
        entries = {k: v for k, v in (conv.speaker_names or {}).items() if v.get("source") != SOURCE}
        session.execute(
            delete(VoiceMatch).where(
                VoiceMatch.conversation_id == conversation_id, VoiceMatch.how == MATCHED
            )
        )
        named = 0
        given = {k for k, v in entries.items() if v.get("source") == USER}
        present = {v.get("person") for v in entries.values() if v.get("source") == USER}
        voices = {k: v for k, v in voices.items() if k not in given}
        prints = {p: v for p, v in _prints(session).items() if p not in present} if voices else {}
        if prints:
            names = dict(
                session.execute(select(Person.id, Person.name).where(Person.id.in_(prints)))
                .tuples()
                .all()
            )
            for label, person, sim in _best_pairs(voices, prints):
                updated = _apply(entries, label, names[person], person, sim)
                if updated is None:
                    continue
                entries = updated
                _set_match(session, conversation_id, label, person, sim, MATCHED)
                named += 1
        if entries != (conv.speaker_names or {}):
            conv.speaker_names = entries
    if named:
        log.info("conversation %s: %d speaker(s) recognized by voice", conversation_id, named)
    return named


def on_rename(
    session: Session,
    conv: Conversation,
    label: str,
    name: str,
    remember: bool,
    apply_to_past: bool,
    operator: bool,
) -> dict[str, Any]:
    """After `mina.notes.rename` in its transaction: with `remember`, the speaker's voice becomes
    a voiceprint of the person (found by this speaker's earlier match, else by name, else new);
    with `apply_to_past` (operators only) the name is carried to past meetings."""
    if apply_to_past and not remember:
        raise ValidationError('"apply_to_past" needs "remember": true (the voice is the link)')
    if apply_to_past and not operator:
        raise Forbidden("only an operator may rename speakers of other meetings")
    if not remember:
        return {"person_id": None, "applied_to": []}
    voice = voices_of(session, conv.id).get(label)
    if voice is None:
        raise Conflict(
            "no voice was kept for this speaker (labels from the provider, or diarized before "
            "voiceprints existed): the name is not remembered",
            code="no_voice",
        )
    match = session.get(VoiceMatch, (conv.id, label))
    person = session.get(Person, match.person_id) if match is not None else None
    if person is None:
        person = session.scalars(
            select(Person)
            .where(func.lower(Person.name) == name.lower())
            .order_by(Person.created_at)
        ).first()
    if person is None:
        person = Person(name=name, consent=True)
        session.add(person)
        session.flush()
    person.name, person.consent = name, True
    stored = session.scalars(
        select(Voiceprint).where(
            Voiceprint.person_id == person.id, Voiceprint.conversation_id == conv.id
        )
    ).first()
    if stored is None:
        session.add(
            Voiceprint(
                person_id=person.id,
                conversation_id=conv.id,
                speaker=label,
                embedding=voice.tolist(),
            )
        )
    else:
        stored.speaker, stored.embedding = label, voice.tolist()
    _set_match(session, conv.id, label, person.id, 1.0, NAMED)
    entries = dict(conv.speaker_names or {})
    entries[label] = {**entries[label], "person": person.id}
    conv.speaker_names = entries
    session.flush()
    applied = carry_back(session, person, conv.id) if apply_to_past else []
    return {"person_id": person.id, "applied_to": applied}


def carry_back(session: Session, person: Person, current: str) -> list[str]:
    """The person's name to every other meeting: speakers whose voice matches their best
    voiceprint (one per meeting, not one with a given name), and speakers a voiceprint of
    theirs already named (renamed). Returns the conversation ids changed. Only conversations
    that change are locked, in id order."""
    prints = _prints(session, [person.id]).get(person.id)
    changed: list[str] = []
    rows = session.execute(
        select(PostTask.conversation_id, PostTask.result)
        .where(
            PostTask.name == "diarize", PostTask.status == DONE, PostTask.conversation_id != current
        )
        .order_by(PostTask.conversation_id)
    ).all()
    for conversation_id, result in rows:
        voices = _vectors(result.get("voices") if isinstance(result, dict) else None)
        conv = session.get(Conversation, conversation_id)
        if conv is None or _carried(conv.speaker_names or {}, voices, person, prints) is None:
            continue
        conv = session.get(
            Conversation, conversation_id, with_for_update=True, populate_existing=True
        )
        found = _carried((conv.speaker_names or {}) if conv else {}, voices, person, prints)
        if conv is None or found is None:
            continue
        conv.speaker_names, match = found
        if match is not None:
            _set_match(session, conversation_id, *match, CARRIED)
        session.flush()
        search_index.rename(session, conv)
        events.record(
            session,
            conversation_id,
            "speakers_recognized",
            {"person_id": person.id, "name": person.name, "carried_from": current},
        )
        changed.append(conversation_id)
    return changed


def _carried(
    stored: dict[str, Any], voices: dict[str, F32], person: Person, prints: F32 | None
) -> tuple[dict[str, Any], tuple[str, str, float] | None] | None:
    """One past meeting's names with the person carried in, and the new match; None when
    nothing changes."""
    entries = dict(stored)
    for label, entry in list(entries.items()):  # names this person's voiceprints gave
        if entry.get("person") == person.id and entry.get("source") == SOURCE:
            entries[label] = {**entry, "name": person.name}
    match = None
    present = any(v.get("person") == person.id for v in entries.values())
    if prints is not None and voices and not present:
        best = _best_pairs(voices, {person.id: prints})
        if best:
            label, _, sim = best[0]
            updated = _apply(entries, label, person.name, person.id, sim)
            if updated is not None:
                entries, match = updated, (label, person.id, sim)
    return None if entries == stored else (entries, match)


def people(session: Session) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(select(Voiceprint.person_id, func.count()).group_by(Voiceprint.person_id))
        .tuples()
        .all()
    )
    meetings = dict(
        session.execute(select(VoiceMatch.person_id, func.count()).group_by(VoiceMatch.person_id))
        .tuples()
        .all()
    )
    return [
        {
            "id": p.id,
            "name": p.name,
            "consent": p.consent,
            "voiceprints": counts.get(p.id, 0),
            "meetings": meetings.get(p.id, 0),
            "created_at": p.created_at.isoformat() + "Z",
        }
        for p in session.scalars(select(Person).order_by(Person.created_at))
    ]


def erase(person_id: str) -> dict[str, Any]:
    """Delete a person: their voiceprints, matches, and every speaker name that came from
    them (given with consent, matched, or carried), in every meeting; search shows the label
    again. One `person_erased` event without a conversation, carrying only the counts."""
    with session_scope() as session:
        person = session.get(Person, person_id, with_for_update=True)
        if person is None:
            raise NotFound(f"person {person_id} not found")
        places = set(
            session.scalars(
                select(VoiceMatch.conversation_id).where(VoiceMatch.person_id == person_id)
            )
        ) | set(
            session.scalars(
                select(Voiceprint.conversation_id).where(Voiceprint.person_id == person_id)
            )
        )
        cleared = 0
        for conversation_id in sorted(places):
            conv = session.get(Conversation, conversation_id, with_for_update=True)
            if conv is None:
                continue
            entries = dict(conv.speaker_names or {})
            kept = {k: v for k, v in entries.items() if v.get("person") != person_id}
            if kept != entries:
                conv.speaker_names = kept
                session.flush()
                search_index.rename(session, conv)
                cleared += 1
        prints = session.execute(delete(Voiceprint).where(Voiceprint.person_id == person_id))
        session.execute(delete(VoiceMatch).where(VoiceMatch.person_id == person_id))
        session.execute(delete(Person).where(Person.id == person_id))
        out = {
            "person_id": person_id,
            "voiceprints": prints.rowcount,  # type: ignore[attr-defined]
            "conversations": cleared,
        }
        events.record(session, None, "person_erased", out)
    log.info(
        "person %s erased (%d voiceprints, %d meetings)", person_id, out["voiceprints"], cleared
    )
    return out

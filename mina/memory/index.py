"""Writing the search index (docs/memory.md): one `utterance` row per segment of the revealed
transcript, written in the reveal's own transaction (`write`), and the shown speaker names
brought up to date when a speaker is renamed (`rename`).

The transcript indexed is the one results show (`mina.results.transcript`: diarized when
diarization ran, the chunks' segments otherwise). Writing replaces the conversation's rows, so a
second reveal (an operator's retry) indexes again without duplicates.
"""

from __future__ import annotations

import logging

from sqlalchemy import cast, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.orm import Session

from mina import notes, results
from mina.memory.models import Utterance
from mina.models import Conversation
from mina.transcript import segments_from_json

log = logging.getLogger(__name__)

#: Whisper language code -> PostgreSQL text search configuration (those PostgreSQL 13+ ships).
CONFIGS = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "da": "danish",
    "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french", "de": "german",
    "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nn": "norwegian",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "es": "spanish",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}  # fmt: skip
SIMPLE = "simple"


def config_for(language: str | None) -> str:
    """The text search configuration of a conversation's language; 'simple' (no stemming, no
    stop words) for an unknown or undetected language."""
    return CONFIGS.get((language or "").lower(), SIMPLE)


def write(session: Session, conv: Conversation) -> int:
    """Replace the conversation's utterances with its transcript as shown now; returns how many
    rows were written. The caller owns the transaction (the reveal's)."""
    diarized = results.task_result(session, conv.id, "diarize")  # labels, not shown names
    if diarized and diarized.get("segments") is not None:
        segments = segments_from_json(diarized["segments"])
    else:
        segments = results.raw_segments(session, conv.id)
    names = notes.shown_names(conv)
    config = config_for(conv.language)
    postgres = session.get_bind().dialect.name == "postgresql"
    session.execute(delete(Utterance).where(Utterance.conversation_id == conv.id))
    rows = []
    for position, seg in enumerate(segments):
        text = " ".join(seg.text.split())
        if not text or seg.flag:
            continue
        label = seg.speaker
        rows.append(
            {
                "conversation_id": conv.id,
                "position": position,
                "speaker": label,
                "speaker_name": names.get(label, label) if label else None,
                "start": seg.start,
                "end": seg.end,
                "text": text,
                "config": config,
                "meeting_at": conv.created_at,
            }
        )
    if rows:
        session.execute(insert(Utterance), rows)
        if postgres:  # the tsvector is made by the database, from the stored text
            session.execute(
                update(Utterance)
                .where(Utterance.conversation_id == conv.id)
                .values(tsv=func.to_tsvector(cast(config, REGCONFIG), Utterance.text))
                .execution_options(synchronize_session=False)
            )
    log.info("conversation %s: %d utterances indexed (%s)", conv.id, len(rows), config)
    return len(rows)


def rename(session: Session, conv: Conversation) -> int:
    """Bring the indexed speaker names in line with the conversation's names (after a rename);
    returns the rows changed."""
    names = notes.shown_names(conv)
    labels = session.scalars(
        select(Utterance.speaker)
        .where(Utterance.conversation_id == conv.id, Utterance.speaker.is_not(None))
        .distinct()
    ).all()
    changed = 0
    for label in labels:
        if label is None:
            continue
        result = session.execute(
            update(Utterance)
            .where(Utterance.conversation_id == conv.id, Utterance.speaker == label)
            .values(speaker_name=names.get(label, label))
            .execution_options(synchronize_session=False)
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    log.info("conversation %s: speaker names of %d utterances updated", conv.id, changed)
    return changed

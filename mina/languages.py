"""The spoken language of a conversation: given when it is created, or detected per chunk.

- A conversation created with a language (API field `language`, or `MINA_LANGUAGE` when that is
  a code) keeps it: every chunk is transcribed in it.
- `auto` (the field, or `MINA_LANGUAGE=auto` with no field): `Conversation.language` stays
  empty until a chunk's transcription detects one. A detection the model is sure of
  (probability >= `SURE`) settles it and later chunks are transcribed in it; while it is unsure,
  each chunk detects again and the surest answer so far is kept. Each change is a
  `language_detected` event (language, probability, sure, chunk index) in the ledger.
- Post-processing steps whose rules only know English (action items and due dates with the
  local rules, filler words) say so for other languages (`english_only`) instead of running.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mina import events
from mina.db import session_scope
from mina.errors import ValidationError
from mina.models import Chunk, Conversation, Event
from mina.settings import Settings

log = logging.getLogger(__name__)

AUTO = "auto"
#: A detection at least this sure settles the conversation's language.
SURE = 0.8
DETECTED = "language_detected"

#: Whisper's languages (faster_whisper.tokenizer._LANGUAGE_CODES), without importing it.
_WHISPER = """af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu
ha haw he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt
my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt
uk ur uz vi yi yo yue zh"""
CODES = frozenset(_WHISPER.split())
NAMES = {
    "en": "English", "es": "Spanish", "de": "German", "fr": "French", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "ru": "Russian", "uk": "Ukrainian",
    "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "tr": "Turkish",
    "cs": "Czech", "el": "Greek", "ro": "Romanian", "hu": "Hungarian", "ja": "Japanese",
    "zh": "Chinese", "ko": "Korean", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi",
}  # fmt: skip


def name(code: str | None) -> str:
    return NAMES.get(code or "", code or "unknown")


def english_only_model(settings: Settings) -> bool:
    """The local model knows English only (tiny.en, or a `.en` model directory)."""
    if settings.transcriber != "local":
        return False
    if settings.whisper_model_path:
        return settings.whisper_model_path.rstrip("/").endswith(".en")
    return settings.whisper_model.endswith(".en")


def validate(code: str | None, settings: Settings) -> str | None:
    """A language given when a conversation is created: a Whisper code, `auto`, or None (the
    setting). Refused: unknown codes, and other languages than English on an English-only
    model (they would come back as an English transcript of foreign speech)."""
    if code is None:
        return None
    code = code.strip().lower()
    if code != AUTO and code not in CODES:
        raise ValidationError(
            f"language: {code!r} is not a language code Whisper knows (e.g. en, es, de) or 'auto'",
            code="invalid_language",
        )
    if code not in (AUTO, "en") and english_only_model(settings):
        raise ValidationError(
            f"language: the transcription model is English only ({settings.whisper_model}); "
            "the operator can set MINA_WHISPER_MODEL=base for other languages",
            code="unsupported_language",
        )
    return code


def initial(code: str | None, settings: Settings) -> str | None:
    """What `Conversation.language` starts as: the given code, None for `auto`."""
    chosen = code or settings.language
    return None if chosen == AUTO else chosen


def for_chunk(conversation_id: str) -> str:
    """The language to transcribe the conversation's next chunk in: its language once given
    or settled, else `auto` (detect)."""
    with session_scope() as session:
        return for_chunk_in(session, conversation_id)


def for_chunk_in(session: Session, conversation_id: str) -> str:
    """`for_chunk` in the caller's transaction."""
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.language is None:
        return AUTO
    return chosen(conv.language, _last_detection(session, conversation_id))


def claim_columns() -> tuple[Any, Any]:
    """What `for_chunk` reads, as two subqueries correlated to the chunk row a statement
    updates: the worker's claim reads them in its own UPDATE (one round trip where there were
    three); `chosen` makes the answer of their values."""
    language = (
        select(Conversation.language)
        .where(Conversation.id == Chunk.conversation_id)
        .scalar_subquery()
    )
    last = (
        select(Event.payload)
        .where(Event.conversation_id == Chunk.conversation_id, Event.type == DETECTED)
        .order_by(Event.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return language, last


def chosen(language: str | None, last: dict[str, Any] | None) -> str:
    """The language to transcribe in, from the conversation's `language` and its last
    detection's payload: `auto` while none is set or the last detection was unsure."""
    if language is None or (last is not None and not last.get("sure")):
        return AUTO
    return language


def for_chunk_id(chunk_id: str) -> str:
    """`for_chunk` of the conversation a chunk belongs to (a long chunk's pieces)."""
    with session_scope() as session:
        conversation_id = session.scalar(select(Chunk.conversation_id).where(Chunk.id == chunk_id))
    return for_chunk(conversation_id) if conversation_id else AUTO


def _code(detected: str | None) -> str | None:
    """A detected language as a code: providers answer `es` or `spanish`."""
    if not detected:
        return None
    value = detected.strip().lower()
    if value in CODES:
        return value
    by_name = {v.lower(): k for k, v in NAMES.items()}
    return by_name.get(value)


def _last_detection(session: Session, conversation_id: str) -> dict[str, Any] | None:
    payload = session.scalars(
        select(Event.payload)
        .where(Event.conversation_id == conversation_id, Event.type == DETECTED)
        .order_by(Event.id.desc())
        .limit(1)
    ).first()
    return dict(payload) if payload is not None else None


def observe(
    conversation_id: str, asked: str, detected: str | None, probability: float | None, index: int
) -> None:
    """After a chunk transcribed with `asked` (a code or `auto`): keep what was detected when
    the conversation's language is not settled yet."""
    detected = _code(detected)
    if asked != AUTO or not detected:
        return
    sure = probability is not None and probability >= SURE
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id, with_for_update=True)
        if conv is None:
            return
        last = _last_detection(session, conversation_id)
        if conv.language is not None and (last is None or last.get("sure")):
            return  # given at creation, or settled by another chunk meanwhile
        best = float(last.get("probability") or 0.0) if last else 0.0
        if last is not None and not sure and (probability or 0.0) <= best:
            return  # an earlier chunk was surer
        conv.language = detected
        payload = {
            "language": detected,
            "probability": round(probability, 3) if probability is not None else None,
            "sure": sure,
            "chunk_index": index,
        }
        events.record(session, conversation_id, DETECTED, payload)
    log.info(
        "conversation %s: language %s detected in chunk %d (p=%s%s)",
        conversation_id,
        detected,
        index,
        "?" if probability is None else f"{probability:.2f}",
        "" if sure else ", unsure",
    )


def english_only(language: str | None, what: str) -> str | None:
    """The notice a step whose rules only know English gives for another language, or None."""
    if language is None or language == "en":
        return None
    return f"{what} only in English; this conversation is in {name(language)}"

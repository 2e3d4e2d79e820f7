"""Reading results: the transcript with absolute times, and each task's validated output."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mina.errors import NotReady
from mina.models import DONE, Chunk, Conversation, PostTask
from mina.pipeline import seams
from mina.transcript import Segment, segments_from_json


def raw_segments(session: Session, conversation_id: str) -> list[Segment]:
    """Chunk segments on one timeline: each chunk starts where the chunks before it ended,
    and each chunk boundary is its seam where one was made (mina.pipeline.seams)."""
    chunks = session.scalars(
        select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
    ).all()
    return seams.joined(list(chunks))


def task_result(session: Session, conversation_id: str, name: str) -> dict[str, Any] | None:
    task = session.scalars(
        select(PostTask).where(PostTask.conversation_id == conversation_id, PostTask.name == name)
    ).first()
    if task is None or task.status != DONE:
        return None
    if name == "tasks" and task.result is not None:
        return with_speaker_owners(session, conversation_id, task.result)
    return task.result


def with_speaker_owners(
    session: Session, conversation_id: str, result: dict[str, Any]
) -> dict[str, Any]:
    """Action items run beside diarization, so "I'll …" has no owner yet: once speakers are
    known, the speaker talking at the item's time owns it (read-time, the stored row stays)."""
    diarized = task_result(session, conversation_id, "diarize")
    if not diarized or not (diarized.get("turns") or diarized.get("segments")):
        return result
    # Diarization's turns are times in the audio; a transcript segment can hold two speakers
    # (whisper does not break at every turn), so its label is the fallback.
    spans = [(float(t["start"]), t["speaker"]) for t in diarized.get("turns") or []]
    if not spans:
        spans = [(s.start, s.speaker) for s in segments_from_json(diarized["segments"])]
    items = []
    for item in result.get("items", []):
        at = item.get("source_time")
        if item.get("owner") is None and at is not None:
            started = [span for span in spans if span[0] <= at + 0.05]  # the latest one started
            speaker = max(started, key=lambda span: span[0])[1] if started else None
            if speaker and speaker != "Unknown":
                item = {**item, "owner": speaker}
        items.append(item)
    return {**result, "items": items}


def transcript(session: Session, conv: Conversation) -> tuple[list[Segment], bool]:
    """The best transcript so far (speakers once diarized) and whether it is complete."""
    diarized = task_result(session, conv.id, "diarize")
    if diarized and diarized.get("segments") is not None:
        return segments_from_json(diarized["segments"]), True
    return raw_segments(session, conv.id), conv.is_all_chunks_transcribed


def require_result(session: Session, conv: Conversation, name: str) -> dict[str, Any]:
    result = task_result(session, conv.id, name)
    if result is None:
        raise NotReady(
            f"{name} is not ready (transcription {conv.status}, processing "
            f"{conv.processing_status})"
        )
    return result

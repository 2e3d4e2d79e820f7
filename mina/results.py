"""Reading results: the transcript with absolute times, and each task's validated output."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mina import notes
from mina.errors import NotReady
from mina.models import Chunk, Conversation, PostTask
from mina.pipeline import seams
from mina.pipeline.task_state import DONE
from mina.transcript import Segment, segments_from_json


def raw_segments(session: Session, conversation_id: str) -> list[Segment]:
    """Chunk segments on one timeline: each chunk starts where the chunks before it ended,
    and each chunk boundary is its seam where one was made (mina.pipeline.seams)."""
    chunks = session.scalars(
        select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
    ).all()
    return seams.joined(list(chunks))


def task_result(session: Session, conversation_id: str, name: str) -> dict[str, Any] | None:
    """A task's stored result (speaker labels as diarization gave them), None until done."""
    task = session.scalars(
        select(PostTask).where(PostTask.conversation_id == conversation_id, PostTask.name == name)
    ).first()
    if task is None or task.status != DONE:
        return None
    return task.result


def shown(session: Session, conv: Conversation, name: str) -> dict[str, Any] | None:
    """A task's result as people see it (API, pages, CLI, exports): speakers by their names."""
    result = task_result(session, conv.id, name)
    names = notes.shown_names(conv)
    if result is None or not names:
        return result
    return with_names(name, result, names)


def with_names(task: str, result: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """`result` with speaker labels replaced by `names` (action items: owner by owner_speaker)."""

    def who(label: Any) -> Any:
        return names.get(label, label) if isinstance(label, str) else label

    def segment(seg: dict[str, Any]) -> dict[str, Any]:
        words = seg.get("words")
        if words:
            words = [{**w, "speaker": who(w.get("speaker"))} for w in words]
        return {**seg, "speaker": who(seg.get("speaker")), "words": words}

    out = dict(result)
    if "segments" in out and out["segments"] is not None:
        out["segments"] = [segment(s) for s in out["segments"]]
    if task == "diarize" and out.get("turns"):
        out["turns"] = [{**t, "speaker": who(t["speaker"])} for t in out["turns"]]
    if task == "analytics":
        out["speakers"] = [{**sp, "speaker": who(sp["speaker"])} for sp in out["speakers"]]
        out["timeline"] = [
            {**p, "shares": {who(k): v for k, v in p["shares"].items()}} for p in out["timeline"]
        ]
    if task == "tasks":
        out["items"] = [
            {**it, "owner": who(it["owner_speaker"])} if it.get("owner_speaker") else it
            for it in out.get("items", [])
        ]
    return out


def transcript(session: Session, conv: Conversation) -> tuple[list[Segment], bool]:
    """The best transcript so far (speakers once diarized) and whether it is complete."""
    diarized = shown(session, conv, "diarize")
    if diarized and diarized.get("segments") is not None:
        return segments_from_json(diarized["segments"]), True
    return raw_segments(session, conv.id), conv.is_all_chunks_transcribed


def require_result(session: Session, conv: Conversation, name: str) -> dict[str, Any]:
    result = shown(session, conv, name)
    if result is None:
        raise NotReady(
            f"{name} is not ready (transcription {conv.status}, processing "
            f"{conv.processing_status})"
        )
    return result

"""What each post-processing task does. `execute` runs one under its row (mina.pipeline.runner).

The chain merge → diarize → analytics runs in order; refinement, tasks and summary need only the
raw transcript and run beside it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mina import audio, results
from mina.db import session_scope
from mina.errors import PermanentError, TransientError
from mina.insights import analytics as analytics_mod
from mina.insights.diarize import assign_speakers, diarize
from mina.models import CHUNK_TRANSCRIBED, Chunk, Conversation
from mina.pipeline import runner
from mina.pipeline.transcribe import Services
from mina.providers.language import get_language
from mina.settings import Settings
from mina.transcript import Segment, segments_from_json

log = logging.getLogger(__name__)


def merged_key(conversation_id: str) -> str:
    return f"conversations/{conversation_id}/merged.ogg"


def merge(conversation_id: str, svc: Services) -> dict[str, Any]:
    """Concatenate the chunks in index order on disk; failed chunks become silence, listed."""
    with session_scope() as session:
        chunks = session.scalars(
            select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
        ).all()
    if not chunks:
        raise PermanentError("no chunks to merge")
    skipped: list[int] = []
    expected = 0.0
    with tempfile.TemporaryDirectory(prefix="mina-merge-") as tmp:
        work = Path(tmp)
        parts: list[Path] = []
        for chunk in chunks:
            part = work / f"{chunk.index:06d}.wav"
            if chunk.status == CHUNK_TRANSCRIBED:
                src = svc.storage.local_path(chunk.storage_key)
                if src is None:
                    src = work / f"{chunk.index:06d}.src"
                    svc.storage.download(chunk.storage_key, src)
                seconds = audio.normalize(src, part)
                if src.parent == work:
                    src.unlink()
            else:
                skipped.append(chunk.index)
                seconds = audio.silence(chunk.duration or 0.0, part)
            expected += seconds
            parts.append(part)
        merged = work / "merged.ogg"
        got = audio.concat(parts, merged)
        if abs(got - expected) > max(0.5, 0.01 * expected):
            raise PermanentError(
                f"merged audio is {got:.2f}s but the chunks add up to {expected:.2f}s"
            )
        key = merged_key(conversation_id)
        blob = svc.storage.put_file(key, merged)
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        assert conv is not None
        conv.merged_audio_key = key
        conv.duration = round(got, 3)
    if skipped:
        log.warning("conversation %s: merge skipped failed chunks %s", conversation_id, skipped)
    return {
        "key": key,
        "duration": round(got, 3),
        "expected_duration": round(expected, 3),
        "chunks": len(chunks),
        "skipped_chunks": skipped,
        "size": blob.size,
    }


def diarize_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        assert conv is not None
        segments = results.raw_segments(session, conversation_id)
        key = conv.merged_audio_key
        speakers_hint = conv.num_speakers
    if segments and all(s.speaker for s in segments):
        labels = sorted({s.speaker for s in segments if s.speaker})
        return {"source": "provider", "speakers": len(labels), "segments": _dump(segments)}
    if not key:
        raise PermanentError("merged audio is not available (merge failed)")
    with tempfile.TemporaryDirectory(prefix="mina-diarize-") as tmp:
        path = svc.storage.local_path(key)
        if path is None:
            path = Path(tmp) / "merged.ogg"
            svc.storage.download(key, path)
        signal = audio.read_pcm(path)
    found = diarize(signal, num_speakers=speakers_hint, max_speakers=svc.settings.max_speakers)
    labelled = assign_speakers(segments, found.turns)
    return {
        "source": "diarization",
        "speakers": found.speakers,
        "turns": [t.model_dump() for t in found.turns],
        "segments": _dump(labelled),
    }


def analytics_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        assert conv is not None
        diarized = results.task_result(session, conversation_id, "diarize")
        if diarized:
            segments = segments_from_json(diarized["segments"])
        else:
            segments = results.raw_segments(session, conversation_id)
        duration = conv.duration or (segments[-1].end if segments else 0.0)
    out = analytics_mod.compute(segments, duration).model_dump()
    out["diarized"] = bool(diarized)
    return out


def _transcript(conversation_id: str) -> tuple[list[Segment], Conversation]:
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        assert conv is not None
        return results.raw_segments(session, conversation_id), conv


def refinement_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    segments, _ = _transcript(conversation_id)
    refined = get_language(svc.settings).refine(segments)
    if len(refined.segments) != len(segments):
        raise TransientError("refinement changed the number of segments")
    return refined.model_dump()


def tasks_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    segments, conv = _transcript(conversation_id)
    return get_language(svc.settings).extract_tasks(segments, conv.created_at.date()).model_dump()


def summary_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    segments, conv = _transcript(conversation_id)
    return get_language(svc.settings).summarize(segments, conv.title or None).model_dump()


TASKS: dict[str, Callable[[str, Services], dict[str, Any]]] = {
    "merge": merge,
    "diarize": diarize_task,
    "analytics": analytics_task,
    "refinement": refinement_task,
    "tasks": tasks_task,
    "summary": summary_task,
}


def _dump(segments: list[Segment]) -> list[dict[str, Any]]:
    return [s.model_dump() for s in segments]


def simulate(name: str, settings: Settings) -> None:
    """Latency, failures and hangs from MINA_SIM_TASK_* (benches and chaos tests)."""
    latency = settings.sim_map(settings.sim_task_latency).get(name)
    if latency:
        time.sleep(latency)
    if name in settings.sim_map(settings.sim_task_fail):
        raise PermanentError(f"simulated failure of {name}")
    if name in settings.sim_map(settings.sim_task_hang):
        deadline = time.monotonic() + 10 * settings.time_limit(name) + 60
        while time.monotonic() < deadline:  # short sleeps, so a time limit can interrupt
            time.sleep(0.05)


def execute(
    conversation_id: str,
    name: str,
    svc: Services,
    *,
    interrupts: tuple[type[BaseException], ...] = (),
) -> str:
    def work() -> dict[str, Any]:
        simulate(name, svc.settings)
        return TASKS[name](conversation_id, svc)

    return runner.run(conversation_id, name, work, svc.settings, interrupts=interrupts)

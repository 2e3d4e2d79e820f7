"""What each post-processing task does. `execute` runs one under its row (mina.pipeline.runner).

The chain merge → diarize → analytics runs in order; refinement, tasks and summary need only the
raw transcript and run beside it. Diarize clusters the features transcription kept for each
chunk (computed in parallel, chunk by chunk) and decodes the merged audio only when some chunk
has none.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mina import audio, events, languages, results
from mina.db import session_scope
from mina.errors import NotFound, PermanentError, TransientError
from mina.insights import analytics as analytics_mod
from mina.insights import features, names, speaker_model
from mina.insights.diarize import assign_speakers, diarize_features, diarize_file
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult
from mina.models import Chunk, Conversation
from mina.pipeline import runner
from mina.pipeline.chunk_state import TRANSCRIBED as CHUNK_TRANSCRIBED
from mina.pipeline.transcribe import features_key, normalized_key
from mina.providers.language import LocalLanguage, get_language, with_rules
from mina.services import Services
from mina.settings import Settings
from mina.transcript import Segment, segments_from_json

log = logging.getLogger(__name__)


# The merged file may differ from the sum of its parts by encoder padding only.
MERGE_TOLERANCE_SECONDS = 0.5
MERGE_TOLERANCE_SHARE = 0.005


def merged_key(conversation_id: str) -> str:
    return f"conversations/{conversation_id}/merged.ogg"


def merge(conversation_id: str, svc: Services) -> dict[str, Any]:
    """Concatenate the chunks in index order on disk; failed chunks become silence, listed.

    Each chunk is normalized to a 16 kHz WAV in a temporary directory and ffmpeg joins them into
    one Opus file, so memory does not grow with the length of the meeting. The result must last
    as long as its parts and as the chunks' recorded durations (the transcript's timeline)
    before it is stored. Originals are only read.
    """
    with session_scope() as session:
        chunks = session.scalars(
            select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
        ).all()
    if not chunks:
        raise PermanentError("no chunks to merge")
    skipped: list[int] = []
    parts_total = 0.0
    with tempfile.TemporaryDirectory(prefix="mina-merge-") as tmp:
        work = Path(tmp)
        parts: list[Path] = []
        for chunk in chunks:
            part = work / f"{chunk.index:06d}.wav"
            if chunk.status == CHUNK_TRANSCRIBED:
                part, seconds = _normalized_part(svc, chunk, part)
            else:
                skipped.append(chunk.index)
                seconds = audio.silence(chunk.duration or 0.0, part)
            parts_total += seconds
            parts.append(part)
        merged = work / "merged.ogg"
        got = audio.concat(parts, merged, opus_complexity=svc.settings.merge_opus_complexity)
        _check_duration(got, parts_total, "its parts")
        recorded = [c.duration for c in chunks]
        timeline = sum(d for d in recorded if d is not None)
        if all(d is not None for d in recorded):
            _check_duration(got, timeline, "the chunks' recorded durations")
        key = merged_key(conversation_id)
        blob = svc.storage.put_file(key, merged, content_type="audio/ogg")
    for chunk in chunks:  # derived copies; a later merge normalizes the originals again
        svc.storage.delete(normalized_key(conversation_id, chunk.index))
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        if conv is None:
            raise PermanentError("the conversation was deleted")
        conv.merged_audio_key = key
        conv.duration = round(got, 3)
    if skipped:
        log.warning(
            "conversation %s: merge put silence for failed chunks %s", conversation_id, skipped
        )
    return {
        "key": key,
        "duration": round(got, 3),
        "expected_duration": round(timeline or parts_total, 3),
        "chunks": len(chunks),
        "skipped_chunks": skipped,
        "size": blob.size,
    }


def _normalized_part(svc: Services, chunk: Chunk, part: Path) -> tuple[Path, float]:
    """The chunk as a 16 kHz mono WAV: the copy transcription kept, else the original again."""
    kept = normalized_key(chunk.conversation_id, chunk.index)
    if svc.storage.exists(kept):
        path = svc.storage.local_path(kept)
        if path is None:
            svc.storage.download(kept, part)
            path = part
        return path, audio.duration(path)
    src = svc.storage.local_path(chunk.storage_key)
    if src is None:
        src = part.with_suffix(".src")
        svc.storage.download(chunk.storage_key, src)
    seconds = audio.normalize(src, part)
    if src.parent == part.parent:
        src.unlink()
    return part, seconds


def _check_duration(got: float, expected: float, what: str) -> None:
    if abs(got - expected) > max(MERGE_TOLERANCE_SECONDS, MERGE_TOLERANCE_SHARE * expected):
        raise PermanentError(f"merged audio is {got:.2f}s but {what} add up to {expected:.2f}s")


def diarize_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    with session_scope() as session:
        conv = _conversation(session, conversation_id)
        segments = results.raw_segments(session, conversation_id)
        key = conv.merged_audio_key
        speakers_hint = conv.num_speakers
        chunks = session.scalars(
            select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
        ).all()
    if segments and all(s.speaker for s in segments):
        labels = sorted({s.speaker for s in segments if s.speaker})
        return {"source": "provider", "speakers": len(labels), "segments": _dump(segments)}
    most = svc.settings.max_speakers
    introduced = names.introductions(segments)  # people who said who they are
    kept = _chunk_features(svc, chunks)
    source = "chunks" if kept is not None else "merged audio"
    if kept is not None:
        found = diarize_features(
            kept, num_speakers=speakers_hint, max_speakers=most, introductions=introduced
        )
    else:
        if not key:
            raise PermanentError("merged audio is not available (merge failed)")
        model = speaker_model.load(svc.settings.speaker_model, svc.settings.data_dir)
        with tempfile.TemporaryDirectory(prefix="mina-diarize-") as tmp:
            path = svc.storage.local_path(key)
            if path is None:
                path = Path(tmp) / "merged.ogg"
                svc.storage.download(key, path)
            found = diarize_file(str(path), model, speakers_hint, most, introduced)
    for chunk in chunks:  # derived; a later run decodes the merged audio
        svc.storage.delete(features_key(conversation_id, chunk.index))
    labelled = assign_speakers(segments, found.turns)
    return {
        "source": "diarization",
        "features": source,  # computed per chunk by transcription, or from the merged audio
        "speakers": found.speakers,
        "turns": [t.model_dump() for t in found.turns],
        "segments": _dump(labelled),
        "voices": found.voices,  # per label, for known speakers only (docs/memory.md)
    }


def _chunk_features(svc: Services, chunks: Sequence[Chunk]) -> features.Features | None:
    """The features transcription kept for every chunk, on the merged audio's timeline; None
    when a chunk has none (it failed, was split, or a remote provider transcribed it). Fetched
    eight at a time: on S3 an hour is 120 small objects."""
    if not chunks or any(c.status != CHUNK_TRANSCRIBED for c in chunks):
        return None
    with tempfile.TemporaryDirectory(prefix="mina-features-") as tmp:

        def fetch(chunk: Chunk) -> features.Features | None:
            key = features_key(chunk.conversation_id, chunk.index)
            try:
                path = svc.storage.local_path(key)
                if path is None:
                    path = Path(tmp) / f"{chunk.index:06d}.npz"
                    svc.storage.download(key, path)
                return features.load(path)
            except NotFound:
                return None
            except ValueError as exc:
                log.warning("chunk %d: unreadable features (%s), decoding", chunk.index, exc)
                return None

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="features") as pool:
            parts = list(pool.map(fetch, chunks))
    if any(part is None for part in parts):
        return None
    return features.assemble([part for part in parts if part is not None])


def analytics_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    with session_scope() as session:
        conv = _conversation(session, conversation_id)
        diarized = results.task_result(session, conversation_id, "diarize")
        if diarized:
            segments = segments_from_json(diarized["segments"])
        else:
            segments = results.raw_segments(session, conversation_id)
        duration = conv.duration or (segments[-1].end if segments else 0.0)
        language = conv.language
    out = analytics_mod.compute(segments, duration).model_dump()
    out["diarized"] = bool(diarized)
    notice = languages.english_only(language, "Filler words are counted")
    if notice:  # the filler lexicon is English: no count rather than a wrong one
        out["speakers"] = [{**sp, "fillers": 0} for sp in out["speakers"]]
        out["fillers_counted"] = False
        out["notices"] = [notice]
    return out


def _transcript(conversation_id: str) -> tuple[list[Segment], Conversation]:
    with session_scope() as session:
        conv = _conversation(session, conversation_id)
        return results.raw_segments(session, conversation_id), conv


def _conversation(session: Session, conversation_id: str) -> Conversation:
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        raise PermanentError("the conversation was deleted")
    return conv


def _validated(schema: type[BaseModel], answer: BaseModel) -> dict[str, Any]:
    """A provider's answer as stored: checked against the task's schema once more, as JSON."""
    try:
        return schema.model_validate(answer.model_dump()).model_dump(mode="json")
    except PydanticValidationError as exc:
        raise PermanentError(
            f"the language provider's answer is not a valid {schema.__name__}: "
            f"{exc.error_count()} error(s)"
        ) from exc


def refinement_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    segments, _ = _transcript(conversation_id)
    refined, fallback = with_rules(svc.settings, "refinement", lambda p: p.refine(segments))
    _record_fallback(conversation_id, "refinement", fallback)
    if len(refined.segments) != len(segments):
        raise TransientError("refinement changed the number of segments")
    return _validated(RefinementResult, refined)


def action_items_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    """Action items on the raw transcript (beside diarization); their owners are settled on
    the diarized one before the reveal (mina.notes.settle)."""
    segments, conv = _transcript(conversation_id)
    notice = languages.english_only(conv.language, "Action items and due dates are found")
    if notice and isinstance(get_language(svc.settings), LocalLanguage):
        return TasksResult(items=[], notice=notice).model_dump(mode="json")
    day = conv.created_at.date()
    found, fallback = with_rules(svc.settings, "tasks", lambda p: p.extract_tasks(segments, day))
    _record_fallback(conversation_id, "tasks", fallback)
    return _validated(TasksResult, found)


def summary_task(conversation_id: str, svc: Services) -> dict[str, Any]:
    segments, conv = _transcript(conversation_id)
    title = conv.title or None
    summary, fallback = with_rules(svc.settings, "summary", lambda p: p.summarize(segments, title))
    _record_fallback(conversation_id, "summary", fallback)
    return _validated(SummaryResult, summary)


def _record_fallback(conversation_id: str, task: str, error: str | None) -> None:
    """The model provider failed and the rules answered: the ledger says so."""
    if error is None:
        return
    with session_scope() as session:
        events.record(
            session, conversation_id, "language_fallback", {"task": task, "error": error[:300]}
        )


TASKS: dict[str, Callable[[str, Services], dict[str, Any]]] = {
    "merge": merge,
    "diarize": diarize_task,
    "analytics": analytics_task,
    "refinement": refinement_task,
    "tasks": action_items_task,
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

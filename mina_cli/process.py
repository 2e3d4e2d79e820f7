"""`mina process FILE…`: the real pipeline on the embedded defaults, with a progress bar.

Each file is cut into ~30 s chunks that go through the same upload service, actors, barrier and
post-processing as the HTTP path, with in-process worker threads. Several files are separate
conversations processed side by side.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from mina import audio, conversations, ingest, probe, results
from mina.db import session_scope
from mina.errors import MinaError, UnsupportedMedia
from mina.models import (
    FAILED,
    PARTIAL,
    READY,
    TASK_NAMES,
    TRANSCRIPTION_FAILED,
    Conversation,
)
from mina.pipeline import finish as finish_service
from mina.pipeline.transcribe import Services
from mina.transcript import FORMATS

log = logging.getLogger(__name__)

TERMINAL_PROCESSING = (READY, PARTIAL, FAILED)


@dataclass
class Job:
    path: Path
    conversation_id: str = ""
    chunks: int = 0
    bar: TaskID | None = None
    post_bar: TaskID | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def check_file(path: Path) -> float:
    """Refuse a missing, empty or non-audio file before any work starts; its duration."""
    if not path.exists():
        raise UnsupportedMedia(f"{path}: no such file")
    if path.is_dir():
        raise UnsupportedMedia(f"{path}: is a directory")
    if path.stat().st_size == 0:
        raise UnsupportedMedia(f"{path}: the file is empty")
    with path.open("rb") as fh:
        if probe.sniff(fh.read(64)) is None:
            raise UnsupportedMedia(f"{path}: not an audio file (wav, mp3, m4a, ogg, webm, flac)")
    return probe.probe(path)


def expected_chunks(seconds: float, chunk_seconds: float) -> int:
    return max(1, math.ceil(seconds / chunk_seconds - 1e-6))


def submit(job: Job, svc: Services, workdir: Path) -> None:
    """Cut the file into chunks and upload each through the ingest service as soon as it is
    cut (transcription of the first chunks overlaps the cutting), then finish."""
    # WAV pieces: no encoding cost, and transcription uses them as they are; they go through
    # the same upload checks as a participant's chunks.
    count = 0
    for index, piece in enumerate(
        audio.segment(job.path, svc.settings.chunk_seconds, workdir / job.conversation_id)
    ):
        with piece.open("rb") as fh:
            ingest.accept_chunk(
                job.conversation_id,
                index,
                fh,
                storage=svc.storage,
                dispatcher=svc.dispatcher,
                settings=svc.settings,
            )
        piece.unlink()
        count = job.chunks = index + 1
    finish_service.finish(job.conversation_id, count, svc.dispatcher)


def _submit_safely(job: Job, svc: Services, workdir: Path) -> None:
    """The cutting thread's boundary: whatever stops it is the job's error, so the wait for
    this job ends instead of waiting for a finish that will never come."""
    try:
        submit(job, svc, workdir)
    except MinaError as exc:
        job.error = exc.message
        log.error("%s: %s", job.path.name, exc.message)
    except Exception as exc:  # a thread boundary: recorded, shown, exit 2
        job.error = f"internal error while cutting: {type(exc).__name__}: {exc}"
        log.exception("%s: cutting failed", job.path.name)


def snapshot(conversation_id: str) -> dict[str, Any]:
    with session_scope() as session:
        conv = conversations.get(session, conversation_id)
        return conversations.status_view(session, conv)


def collect(job: Job) -> dict[str, Any]:
    with session_scope() as session:
        conv = conversations.get(session, job.conversation_id)
        segments, _ = results.transcript(session, conv)
        out: dict[str, Any] = {
            "conversation_id": conv.id,
            "status": conv.status,
            "processing_status": conv.processing_status,
            "transcript": {"segments": [s.model_dump() for s in segments]},
        }
        for name in ("analytics", "tasks", "summary", "refinement"):
            out[name] = results.task_result(session, conv.id, name)
        out["status_detail"] = conversations.status_view(session, conv)
    return out


def run(
    paths: list[Path],
    svc: Services,
    *,
    speakers: int | None,
    console: Console,
    durations: list[float] | None = None,
    poll: float = 0.05,
) -> list[Job]:
    """Process each file as its own conversation, all side by side; returns when every one is
    revealed, failed, or could not be cut."""
    jobs = [Job(p) for p in paths]
    workdir = Path(tempfile.mkdtemp(prefix="mina-process-"))
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            threads = []
            for n, job in enumerate(jobs):
                with session_scope() as session:
                    conv, _token = conversations.create(session, job.path.stem)
                    conv.num_speakers = speakers
                    job.conversation_id = conv.id
                seconds = durations[n] if durations else 0.0
                job.bar = progress.add_task(
                    f"{job.path.name}: chunks transcribed",
                    total=expected_chunks(seconds, svc.settings.chunk_seconds),
                )
                job.post_bar = progress.add_task(
                    f"{job.path.name}: post-processing", total=len(TASK_NAMES)
                )
                thread = threading.Thread(
                    target=_submit_safely, args=(job, svc, workdir), name=f"cut-{n}", daemon=True
                )
                thread.start()
                threads.append(thread)
            _wait(jobs, progress, poll)
            for thread in threads:
                thread.join()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for job in jobs:
        job.result = collect(job)
    return jobs


def _wait(jobs: list[Job], progress: Progress, poll: float, refresh: float = 0.25) -> None:
    """Until every job is over: its end is checked every `poll` seconds with one small query,
    the bars are refreshed every `refresh` seconds (a full status view costs more)."""
    open_jobs = list(jobs)
    shown = 0.0
    while open_jobs:
        redraw = time.monotonic() - shown >= refresh
        for job in list(open_jobs):
            over = job.error is not None or _is_over(job.conversation_id)
            if redraw or over:
                _draw(job, progress)
            if over:
                open_jobs.remove(job)
        if redraw:
            shown = time.monotonic()
        time.sleep(poll)


def _is_over(conversation_id: str) -> bool:
    with session_scope() as session:
        status, processing = session.execute(
            select(Conversation.status, Conversation.processing_status).where(
                Conversation.id == conversation_id
            )
        ).one()
    return bool(status == TRANSCRIPTION_FAILED or processing in TERMINAL_PROCESSING)


def _draw(job: Job, progress: Progress) -> None:
    view = snapshot(job.conversation_id)
    chunks = view["chunks"]
    done = chunks.get("transcribed", 0) + chunks.get("failed", 0)
    assert job.bar is not None and job.post_bar is not None
    progress.update(job.bar, completed=done)
    if view["is_finished"]:
        progress.update(job.bar, total=view["expected_chunks"] or done)
    tasks = view["tasks"]
    finished = [n for n, t in tasks.items() if t["status"] in ("done", "failed")]
    running = [n for n, t in tasks.items() if t["status"] == "running"]
    label = f"{job.path.name}: post-processing"
    if running:
        label += f" ({', '.join(running)})"
    progress.update(job.post_bar, completed=len(finished), description=label)


def write_outputs(job: Job, out_dir: Path, fmt: str) -> list[Path]:
    from mina.transcript import segments_from_json

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = job.path.stem
    segments = segments_from_json(job.result["transcript"]["segments"])
    written = []
    transcript = out_dir / f"{stem}.transcript.{fmt if fmt != 'md' else 'md'}"
    if fmt == "md":
        transcript.write_text(markdown(job.result))
    else:
        transcript.write_text(FORMATS[fmt](segments))
    written.append(transcript)
    for name in ("analytics", "tasks", "summary"):
        path = out_dir / f"{stem}.{name}.json"
        path.write_text(json.dumps(job.result.get(name), indent=2))
        written.append(path)
    return written


def markdown(result: dict[str, Any]) -> str:
    lines: list[str] = []
    summary = result.get("summary") or {}
    lines.append(f"# {summary.get('title') or 'Meeting'}\n")
    if summary:
        lines.append(summary.get("summary", "") + "\n")
        for heading, key in (
            ("Key points", "key_points"),
            ("Decisions", "decisions"),
            ("Open questions", "open_questions"),
        ):
            if summary.get(key):
                lines.append(f"## {heading}\n")
                lines += [f"- {item}" for item in summary[key]]
                lines.append("")
    items = (result.get("tasks") or {}).get("items") or []
    if items:
        lines.append("## Action items\n")
        for it in items:
            extra = ", ".join(x for x in (it.get("owner"), it.get("due")) if x)
            lines.append(f"- {it['text']}" + (f" ({extra})" if extra else ""))
        lines.append("")
    lines.append("## Transcript\n")
    for s in result["transcript"]["segments"]:
        who = f"**{s['speaker']}** " if s.get("speaker") else ""
        lines.append(f"- `{s['start']:7.1f}s` {who}{s['text']}")
    return "\n".join(lines) + "\n"


def public_json(job: Job) -> dict[str, Any]:
    r = job.result
    return {
        "conversation_id": r["conversation_id"],
        "status": r["status"],
        "processing_status": r["processing_status"],
        "transcript": r["transcript"],
        "analytics": r["analytics"],
        "tasks": r["tasks"],
        "summary": r["summary"],
    }

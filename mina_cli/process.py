"""`mina process FILE…`: the real pipeline on the embedded defaults, with a progress bar.

Each file is cut into ~30 s chunks that go through the same upload service, actors, barrier and
post-processing as the HTTP path, with in-process worker threads. Several files are separate
conversations processed side by side.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from mina import conversations, events, ingest, languages, results
from mina.db import session_scope
from mina.errors import MinaError
from mina.models import Conversation
from mina.pipeline import finish as finish_service
from mina.pipeline.conversation_state import REVEALED, TRANSCRIPTION_FAILED
from mina.pipeline.task_state import NAMES as TASK_NAMES
from mina.relay import Message
from mina.services import Services
from mina.transcript import FORMATS
from mina_cli import cut

log = logging.getLogger(__name__)

TERMINAL_PROCESSING = REVEALED


@dataclass
class Job:
    path: Path
    conversation_id: str = ""
    bar: TaskID | None = None
    post_bar: TaskID | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def submit(job: Job, pieces: list[Path], svc: Services) -> None:
    """Upload each piece through the ingest service (the same checks as a participant's
    chunks; WAV, so transcription uses them as they are), then finish."""
    for index, piece in enumerate(pieces):
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
    finish_service.finish_conversation(job.conversation_id, len(pieces), svc.dispatcher)


def _submit_safely(job: Job, pieces: list[Path], svc: Services) -> None:
    """The upload thread's boundary: whatever stops it is the job's error, so the wait for
    this job ends instead of waiting for a finish that will never come."""
    try:
        submit(job, pieces, svc)
    except MinaError as exc:
        job.error = exc.message
        log.error("%s: %s", job.path.name, exc.message)
    except Exception as exc:  # a thread boundary: recorded, shown, exit 2
        job.error = f"internal error while uploading: {type(exc).__name__}: {exc}"
        log.exception("%s: uploading failed", job.path.name)


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
            out[name] = results.shown(session, conv, name)
        out["status_detail"] = conversations.status_view(session, conv)
    return out


def run(
    cuts: list[cut.Cut],
    svc: Services,
    *,
    speakers: int | None,
    console: Console,
) -> list[Job]:
    """Process each cut file as its own conversation, all side by side; returns when every one
    is revealed, failed, or could not be uploaded. Raises UnsupportedMedia, before creating
    anything, if a file could not be cut."""
    pieces = [c.wait() for c in cuts]
    jobs = [Job(c.path) for c in cuts]
    watcher = Watcher()
    stop_watching = events.watch(watcher)
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
                    language = languages.initial(None, svc.settings)  # --language or setting
                    conv, _token = conversations.create(session, job.path.stem, language)
                    conv.num_speakers = speakers
                    job.conversation_id = conv.id
                watcher.add(job.conversation_id)
                job.bar = progress.add_task(
                    f"{job.path.name}: chunks transcribed",
                    total=len(pieces[n]),
                )
                job.post_bar = progress.add_task(
                    f"{job.path.name}: post-processing", total=len(TASK_NAMES)
                )
                thread = threading.Thread(
                    target=_submit_safely,
                    args=(job, pieces[n], svc),
                    name=f"upload-{n}",
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
            _wait(jobs, progress, watcher)
            for thread in threads:
                thread.join()
    finally:
        stop_watching()
    for job in jobs:
        job.result = collect(job)
    return jobs


class Watcher:
    """What the ledger says about the jobs' conversations, as this process commits events:
    the bars move and the end is seen without querying the database in a loop (polling at
    20 Hz took a fifth of a core from the transcription workers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._changed = False
        self.chunks: dict[str, set[int]] = {}
        self.tasks: dict[str, dict[str, str]] = {}
        self.over: set[str] = set()

    def add(self, conversation_id: str) -> None:
        with self._cond:
            self.chunks[conversation_id] = set()
            self.tasks[conversation_id] = {}

    def __call__(self, messages: Sequence[Message]) -> None:
        with self._cond:
            for message in messages:
                cid = message["conversation_id"]
                if cid not in self.chunks:
                    continue
                kind = message["type"]
                if kind in ("chunk_transcribed", "chunk_failed"):
                    self.chunks[cid].add(int(message["payload"]["index"]))
                elif kind in TERMINAL_EVENTS:
                    self.over.add(cid)
                else:
                    name, _, state = kind.rpartition("_")
                    if name in TASK_NAMES and state in TASK_STATES:
                        self.tasks[cid][name] = TASK_STATES[state]
                self._changed = True
            if self._changed:
                self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """Until some event of ours commits (True), or `timeout` seconds (False)."""
        with self._cond:
            if not self._changed and timeout > 0:
                self._cond.wait(timeout)
            changed, self._changed = self._changed, False
            return changed


TERMINAL_EVENTS = ("post_transcription_reveal", "post_transcription_failed")
TASK_STATES = {"started": "running", "ready": "done", "failed": "failed"}


def _wait(jobs: list[Job], progress: Progress, watcher: Watcher, refresh: float = 0.25) -> None:
    """Until every job is over. Woken by the jobs' committed events: an end is seen at once,
    the bars are redrawn from what the events said at most every `refresh` seconds, and the
    database is asked only as a backstop (after a second without news) and once at each job's
    end, for the exact final counts."""
    open_jobs = list(jobs)
    shown = news = time.monotonic()
    dirty = False
    while open_jobs:
        timeout = max(0.0, shown + refresh - time.monotonic()) if dirty else 1.0
        if watcher.wait(timeout):
            dirty, news = True, time.monotonic()
        now = time.monotonic()
        backstop = now - news >= 1.0
        redraw = dirty and now - shown >= refresh
        for job in list(open_jobs):
            cid = job.conversation_id
            if job.error is not None or cid in watcher.over or (backstop and _is_over(cid)):
                _draw(job, progress)
                open_jobs.remove(job)
            elif redraw:
                _draw_seen(job, progress, watcher)
        if redraw:
            shown, dirty = now, False
        if backstop:
            news = now


def _is_over(conversation_id: str) -> bool:
    with session_scope() as session:
        status, processing = session.execute(
            select(Conversation.status, Conversation.processing_status).where(
                Conversation.id == conversation_id
            )
        ).one()
    return bool(status == TRANSCRIPTION_FAILED or processing in TERMINAL_PROCESSING)


def _draw_seen(job: Job, progress: Progress, watcher: Watcher) -> None:
    assert job.bar is not None and job.post_bar is not None
    cid = job.conversation_id
    progress.update(job.bar, completed=len(watcher.chunks[cid]))  # its total: the pieces cut
    tasks = watcher.tasks[cid]
    finished = [n for n, state in tasks.items() if state in ("done", "failed")]
    running = [n for n, state in tasks.items() if state == "running"]
    _post_label(job, progress, finished, running)


def _post_label(job: Job, progress: Progress, finished: list[str], running: list[str]) -> None:
    assert job.post_bar is not None
    label = f"{job.path.name}: post-processing"
    if running:
        label += f" ({', '.join(running)})"
    progress.update(job.post_bar, completed=len(finished), description=label)


def _draw(job: Job, progress: Progress) -> None:
    """The job's bars from the database (its final state)."""
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
    _post_label(job, progress, finished, running)


def write_outputs(job: Job, out_dir: Path, fmt: str) -> list[Path]:
    """`--format md`: one Markdown file of meeting notes. `json`: the notes, the transcript and
    each result as JSON files. `txt`, `srt`, `vtt`: the transcript in that format."""
    from mina import minutes
    from mina.transcript import segments_from_json

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = job.path.stem
    if fmt in ("md", "json"):
        with session_scope() as session:
            notes = minutes.build(session, conversations.get(session, job.conversation_id))
    if fmt == "md":
        path = out_dir / f"{stem}.md"
        path.write_text(minutes.markdown(notes))
        return [path]
    segments = segments_from_json(job.result["transcript"]["segments"])
    transcript = out_dir / f"{stem}.transcript.{fmt}"
    transcript.write_text(FORMATS[fmt](segments))
    written = [transcript]
    if fmt == "json":
        docs: dict[str, Any] = {"notes": notes}
        docs.update((name, job.result.get(name)) for name in ("analytics", "tasks", "summary"))
        for name, doc in docs.items():
            path = out_dir / f"{stem}.{name}.json"
            path.write_text(json.dumps(doc, indent=2))
            written.append(path)
    return written


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

"""Post-processing (DESIGN §4): start once, run each task under its own row, reveal once.

`start` flips `processing_status` pending → running conditionally and queues one group: the
pipeline merge → diarize → analytics, and refinement, tasks, summary beside it, with `reveal` as
the completion callback. `reveal` is a conditional update too, so duplicated starts, callbacks
and concurrent reveals still give exactly one reveal event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mina import events, metrics, notes
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import Conflict, TransientError
from mina.memory import index as search_index
from mina.memory import voiceprints
from mina.models import (
    DONE,
    FAILED,
    PARTIAL,
    PENDING,
    READY,
    RUNNING,
    TASK_NAMES,
    TASK_TERMINAL,
    TRANSCRIBED,
    USER_FACING,
    Conversation,
    PostTask,
)
from mina.settings import Settings

log = logging.getLogger(__name__)

CHAIN = ("merge", "diarize", "analytics")


def start(conversation_id: str, dispatcher: Dispatcher) -> bool:
    """pending → running, once; creates the task rows and queues the group."""
    with session_scope() as session:
        won = session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.processing_status == PENDING,
                Conversation.status == TRANSCRIBED,
            )
            .values(processing_status=RUNNING)
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return False
        existing = set(
            session.scalars(
                select(PostTask.name).where(PostTask.conversation_id == conversation_id)
            )
        )
        for name in TASK_NAMES:
            if name not in existing:
                session.add(PostTask(conversation_id=conversation_id, name=name, status=PENDING))
        events.record(
            session, conversation_id, "post_transcription_started", {"tasks": list(TASK_NAMES)}
        )
    log.info("conversation %s: post-processing started", conversation_id)
    dispatch(conversation_id, TASK_NAMES, dispatcher)
    return True


def dispatch(conversation_id: str, names: Sequence[str], dispatcher: Dispatcher) -> bool:
    try:
        dispatcher.post_process(conversation_id, list(names))
        return True
    except TransientError as exc:
        log.warning(
            "conversation %s: post-processing not queued (%s); the scheduler will",
            conversation_id,
            exc,
        )
        return False


def task_rows(session: Session, conversation_id: str) -> dict[str, PostTask]:
    rows = session.scalars(select(PostTask).where(PostTask.conversation_id == conversation_id))
    return {t.name: t for t in rows}


def progress_of(tasks: dict[str, PostTask]) -> int:
    done = sum(1 for t in tasks.values() if t.status in TASK_TERMINAL)
    return int(100 * done / max(1, len(tasks)))


def reveal(conversation_id: str, settings: Settings) -> bool:
    """Reveal once all tasks are terminal: ready, partial or failed by the 3-of-4 rule. Owners
    and names are settled first, on the final transcript (`mina.notes.settle`), in their own
    transaction: it locks the tasks row before the conversation's, the order task writers use."""
    if _all_terminal(conversation_id):
        notes.settle(conversation_id)
        voiceprints.recognize(conversation_id)  # known voices by name (docs/memory.md)
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id, with_for_update=True)
        if conv is None or conv.processing_status != RUNNING:
            return False
        tasks = task_rows(session, conversation_id)
        if not tasks or any(t.status not in TASK_TERMINAL for t in tasks.values()):
            log.info("conversation %s: reveal deferred, tasks still running", conversation_id)
            return False
        failed = [n for n in USER_FACING if tasks[n].status != DONE]
        succeeded = len(USER_FACING) - len(failed)
        if succeeded < settings.reveal_min_success:
            outcome = FAILED
        else:
            outcome = READY if not failed else PARTIAL
        now = utcnow()
        won = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.processing_status == RUNNING)
            .values(
                processing_status=outcome,
                revealed_at=now,
                reveal_count=Conversation.reveal_count + 1,
                progress=100,
            )
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return False
        payload = {
            "status": outcome,
            "reveal": conv.reveal_count + 1,
            "failed_tasks": failed,
            "errors": {n: tasks[n].error for n in failed},
            "durations_ms": {n: t.duration_ms for n, t in tasks.items()},
        }
        name = "post_transcription_failed" if outcome == FAILED else "post_transcription_reveal"
        search_index.write(session, conv)  # searchable from the reveal on (docs/memory.md)
        events.record(session, conversation_id, name, payload)
        first_wait = conv.finished_at and not conv.reveal_count and now - conv.finished_at
    if first_wait:
        metrics.REVEAL_SECONDS.observe(first_wait.total_seconds())
    log.info(
        "conversation %s: revealed as %s (failed: %s)", conversation_id, outcome, failed or "-"
    )
    return True


def _all_terminal(conversation_id: str) -> bool:
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        if conv is None or conv.processing_status != RUNNING:
            return False
        tasks = task_rows(session, conversation_id)
        return bool(tasks) and all(t.status in TASK_TERMINAL for t in tasks.values())


def retry_failed(conversation_id: str, dispatcher: Dispatcher) -> list[str]:
    """Operator retry: rerun only the failed tasks; their reveal may upgrade partial → ready.

    A chain task after a retried one (analytics after diarize) reruns too: its result was
    computed without that input. Returns the names queued ([] when nothing had failed).
    """
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id, with_for_update=True)
        if conv is None or conv.processing_status == PENDING:
            raise Conflict("post-processing has not started for this conversation")
        if conv.processing_status == RUNNING:
            raise Conflict("post-processing is still running", code="running")
        tasks = task_rows(session, conversation_id)
        names = rerun_set(tasks)
        if not names:
            return []
        for n in names:
            tasks[n].status = PENDING
            tasks[n].error = None
        conv.processing_status = RUNNING
        conv.progress = 70 + int(30 * progress_of(tasks) / 100)
        events.record(
            session, conversation_id, "post_transcription_started", {"tasks": names, "retry": True}
        )
    log.info("conversation %s: operator retry of %s", conversation_id, ", ".join(names))
    dispatch(conversation_id, names, dispatcher)
    return names


def rerun_set(tasks: dict[str, PostTask]) -> list[str]:
    """The failed tasks, plus every chain task after the first failed one in the chain."""
    names = {n for n, t in tasks.items() if t.status == FAILED}
    failed_chain = [i for i, n in enumerate(CHAIN) if n in names]
    if failed_chain:
        names.update(n for n in CHAIN[failed_chain[0] :] if n in tasks)
    return [n for n in TASK_NAMES if n in names]

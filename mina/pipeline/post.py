"""Post-processing (DESIGN §4): start once, run each task under its own row, reveal once.

`start` flips `processing_status` pending → running conditionally and queues one group: the
pipeline merge → diarize → analytics, and refinement, tasks, summary beside it, with `reveal` as
the completion callback. `reveal` is a conditional update too, so duplicated starts, callbacks
and concurrent reveals still give exactly one reveal event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mina import events, metrics, notes
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import Conflict, TransientError
from mina.memory import index as search_index
from mina.memory import voiceprints
from mina.models import Conversation, PostTask
from mina.pipeline import conversation_state, task_state
from mina.pipeline.conversation_state import FAILED, PARTIAL, PENDING, READY, RUNNING
from mina.pipeline.task_state import CHAIN, NAMES, USER_FACING
from mina.settings import Settings

log = logging.getLogger(__name__)


def start(conversation_id: str, dispatcher: Dispatcher) -> bool:
    """pending → running, once; creates the task rows and queues the group."""
    with session_scope() as session:
        if not conversation_state.start(session, conversation_id):
            return False
    log.info("conversation %s: post-processing started", conversation_id)
    dispatch(conversation_id, NAMES, dispatcher)
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


def reveal(conversation_id: str, settings: Settings) -> bool:
    """Reveal once all tasks are terminal: ready, partial or failed by the 3-of-4 rule. Owners
    and names are settled first, on the final transcript (`mina.notes.settle`), in their own
    transaction: it locks the tasks row before the conversation's, the order task writers use."""
    if _all_terminal(conversation_id):
        notes.settle(conversation_id, settings)
        voiceprints.recognize(conversation_id)  # known voices by name (docs/memory.md)
    with session_scope() as session:
        conv = events.lock(session, conversation_id)
        if conv is None or conv.processing_status != RUNNING:
            return False
        tasks = task_state.rows(session, conversation_id)
        if not tasks or any(t.status not in task_state.TERMINAL for t in tasks.values()):
            log.info("conversation %s: reveal deferred, tasks still running", conversation_id)
            return False
        failed = [n for n in USER_FACING if tasks[n].status != task_state.DONE]
        succeeded = len(USER_FACING) - len(failed)
        if succeeded < settings.reveal_min_success:
            outcome = FAILED
        else:
            outcome = READY if not failed else PARTIAL
        now = utcnow()
        payload = {
            "status": outcome,
            "reveal": conv.reveal_count + 1,
            "failed_tasks": failed,
            "errors": {n: tasks[n].error for n in failed},
            "durations_ms": {n: t.duration_ms for n, t in tasks.items()},
        }
        if not conversation_state.reveal(session, conv, outcome, payload):
            return False
        search_index.write(session, conv)  # searchable from the reveal on (docs/memory.md)
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
        tasks = task_state.rows(session, conversation_id)
        return bool(tasks) and all(t.status in task_state.TERMINAL for t in tasks.values())


def retry_failed(conversation_id: str, dispatcher: Dispatcher) -> list[str]:
    """Operator retry: rerun only the failed tasks; their reveal may upgrade partial → ready.

    A chain task after a retried one (analytics after diarize) reruns too: its result was
    computed without that input. Returns the names queued ([] when nothing had failed).
    """
    with session_scope() as session:
        conv = events.lock(session, conversation_id)
        if conv is None or conv.processing_status == PENDING:
            raise Conflict("post-processing has not started for this conversation")
        if conv.processing_status == RUNNING:
            raise Conflict("post-processing is still running", code="running")
        tasks = task_state.rows(session, conversation_id)
        names = rerun_set(tasks)
        if not names:
            return []
        task_state.retry(tasks, names)
        progress = 70 + int(30 * task_state.progress_of(tasks) / 100)
        conversation_state.retry(session, conv, names, progress)
    log.info("conversation %s: operator retry of %s", conversation_id, ", ".join(names))
    dispatch(conversation_id, names, dispatcher)
    return names


def rerun_set(tasks: dict[str, PostTask]) -> list[str]:
    """The failed tasks, plus every chain task after the first failed one in the chain."""
    names = {n for n, t in tasks.items() if t.status == task_state.FAILED}
    failed_chain = [i for i, n in enumerate(CHAIN) if n in names]
    if failed_chain:
        names.update(n for n in CHAIN[failed_chain[0] :] if n in tasks)
    return [n for n in NAMES if n in names]

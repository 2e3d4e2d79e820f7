"""The post-processing task's state machine (`post_task.status`): every transition is here; no
other module writes the column (tests/unit/test_state_owners.py).

A task row is created `pending` when post-processing starts, taken `running` by one worker
(conditionally, fenced by its attempt number), and ends `done` or `failed`. The scheduler puts
a task whose worker died back to `pending` (below the attempt cap) or fails it; an operator
retry puts failed tasks (and the chain tasks after them) back to `pending`. The event of each
change is recorded in its transaction, after the conversation's lock (`lock_conversation`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import tenacity
from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from mina import events
from mina.db import session_scope, utcnow
from mina.models import Conversation, PostTask
from mina.pipeline import heartbeat
from mina.pipeline.machine import Machine, Transition
from mina.settings import Settings

log = logging.getLogger(__name__)


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
DONE, FAILED = TaskStatus.DONE, TaskStatus.FAILED
TERMINAL: tuple[str, ...] = (DONE, FAILED)

#: Every task of post-processing; `tasks` makes the action items.
NAMES = ("merge", "diarize", "analytics", "refinement", "tasks", "summary")
#: The tasks whose results users read (the reveal's 3-of-4 rule counts them).
USER_FACING = ("refinement", "analytics", "tasks", "summary")
#: Run one after the other: each needs the one before it.
CHAIN = ("merge", "diarize", "analytics")

MACHINE = Machine(
    name="post-processing task",
    column="post_task.status",
    states=TaskStatus,
    initial=PENDING,
    terminal=(DONE, FAILED),
    transitions=(
        Transition(
            "begin", (PENDING,), (RUNNING,), "a worker takes it (its chain predecessor is terminal)"
        ),
        Transition(
            "complete",
            (RUNNING,),
            (DONE, FAILED),
            "the attempt's worker stores its result or its error",
        ),
        Transition(
            "put_back",
            (RUNNING,),
            (PENDING,),
            "scheduler: past its deadline (worker gone), below the attempt cap",
        ),
        Transition("time_out", (RUNNING,), (FAILED,), "scheduler: past its deadline at the cap"),
        Transition(
            "retry",
            (FAILED, DONE),
            (PENDING,),
            "operator retry: the failed tasks and the chain tasks after them",
        ),
        Transition("reclaim_inflight", (RUNNING,), (PENDING,), "start of the embedded process"),
    ),
)

# A deadlock victim or a dropped connection: the changes below are conditional and run in one
# transaction each, so running them again is safe.
db_retry = tenacity.retry(
    retry=tenacity.retry_if_exception_type(OperationalError),
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_exponential(multiplier=0.1, max=1),
    reraise=True,
)


def predecessor(name: str) -> str | None:
    """The task of the chain that must be terminal before `name` may start."""
    if name in CHAIN and CHAIN.index(name) > 0:
        return CHAIN[CHAIN.index(name) - 1]
    return None


def rows(session: Session, conversation_id: str) -> dict[str, PostTask]:
    found = session.scalars(select(PostTask).where(PostTask.conversation_id == conversation_id))
    return {t.name: t for t in found}


def progress_of(tasks: dict[str, PostTask]) -> int:
    done = sum(1 for t in tasks.values() if t.status in TERMINAL)
    return int(100 * done / max(1, len(tasks)))


def create(session: Session, conversation_id: str) -> None:
    """The rows of a conversation's post-processing, `pending` (those missing only)."""
    existing = set(
        session.scalars(select(PostTask.name).where(PostTask.conversation_id == conversation_id))
    )
    for name in NAMES:
        if name not in existing:
            session.add(PostTask(conversation_id=conversation_id, name=name, status=PENDING))


def delete_all(session: Session, conversation_id: str) -> None:
    """A reopened conversation's rows go: stale results are not served, and a late message of
    the old run finds no row to run."""
    session.execute(delete(PostTask).where(PostTask.conversation_id == conversation_id))


@db_retry
def begin(conversation_id: str, name: str, settings: Settings) -> int | None:
    """pending → running; returns this run's attempt number, None if not ours to run."""
    if name not in NAMES:
        raise ValueError(f"unknown task {name!r}")
    now = utcnow()
    limit = settings.time_limit(name)
    condition = [
        PostTask.conversation_id == conversation_id,
        PostTask.name == name,
        PostTask.status.in_(MACHINE.sources("begin")),
    ]
    before = predecessor(name)
    if before is not None:
        prev = aliased(PostTask)
        condition.append(
            exists().where(
                prev.conversation_id == conversation_id,
                prev.name == before,
                prev.status.in_(TERMINAL),
            )
        )
    with session_scope() as session:
        taken = session.execute(
            update(PostTask)
            .where(*condition)
            .values(
                status=RUNNING,
                attempts=PostTask.attempts + 1,
                started_at=now,
                finished_at=None,
                error=None,
                deadline_at=heartbeat.first_lease(now, limit + 5, settings),
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        attempt = session.scalar(
            select(PostTask.attempts).where(
                PostTask.conversation_id == conversation_id, PostTask.name == name
            )
        )
        events.record(session, conversation_id, f"{name}_started", {"task": name})
    return int(attempt or 1)


def _mine(conversation_id: str, name: str, attempt: int) -> Any:
    return and_(
        PostTask.conversation_id == conversation_id,
        PostTask.name == name,
        PostTask.status == RUNNING,
        PostTask.attempts == attempt,
    )


def renew_deadline(conversation_id: str, name: str, attempt: int, settings: Settings) -> bool:
    """The heartbeat of a running task: `deadline_at` the timeout from now, never past the time
    limit after its start. False once the row is no longer this attempt's."""
    now = utcnow()
    mine = _mine(conversation_id, name, attempt)
    with session_scope() as session:
        started = session.scalar(select(PostTask.started_at).where(mine))
        if started is None:
            return False
        until = heartbeat.renewed_lease(now, started, settings.time_limit(name) + 5, settings)
        session.execute(
            update(PostTask)
            .where(mine, PostTask.deadline_at < until)
            .values(deadline_at=until)
            .execution_options(synchronize_session=False)
        )
    return True


@db_retry
def complete(
    conversation_id: str,
    name: str,
    attempt: int,
    duration_ms: int,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> int | None:
    """running → done (with its result) or failed (with its error), only if the row is still
    this attempt's; returns the share of tasks now terminal, None when it was not."""
    with session_scope() as session:
        stored = session.execute(
            update(PostTask)
            .where(_mine(conversation_id, name, attempt))
            .values(
                status=FAILED if error else DONE,
                error=error,
                result=result,
                finished_at=utcnow(),
                duration_ms=duration_ms,
            )
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount != 1:  # type: ignore[attr-defined]
            log.info(
                "conversation %s: task %s attempt %d lost its row", conversation_id, name, attempt
            )
            return None
        lock_conversation(session, conversation_id)
        if error:
            events.record(
                session,
                conversation_id,
                f"{name}_failed",
                {"task": name, "error": error, "duration_ms": duration_ms},
            )
        else:
            events.record(
                session,
                conversation_id,
                f"{name}_ready",
                {"task": name, "duration_ms": duration_ms, "result": result},
            )
        percent = record_progress(session, conversation_id)
    return percent


def time_out(session: Session, task: PostTask, reason: str) -> None:
    """Fail a running task (locked by the caller) whose worker vanished or overran its deadline
    at the attempt cap (the scheduler)."""
    MACHINE.check("time_out", task.status, FAILED)
    task.status = FAILED
    task.error = reason
    task.finished_at = utcnow()
    session.flush()
    lock_conversation(session, task.conversation_id)
    events.record(
        session, task.conversation_id, f"{task.name}_failed", {"task": task.name, "error": reason}
    )
    record_progress(session, task.conversation_id)


def put_back(task: PostTask, reason: str) -> None:
    """A running task (locked by the caller) past its deadline goes back to `pending`: the
    scheduler queues it again, and the old run can no longer store its result (`complete` is
    fenced by the attempt number)."""
    MACHINE.check("put_back", task.status, PENDING)
    task.status = PENDING
    task.error = reason


def retry(tasks: dict[str, PostTask], names: Iterable[str]) -> None:
    """Operator retry: `names` (failed tasks and the chain tasks after them) back to pending."""
    for n in names:
        MACHINE.check("retry", tasks[n].status, PENDING)
        tasks[n].status = PENDING
        tasks[n].error = None


def reclaim_inflight(session: Session) -> int:
    """At start of the sole embedded process nothing else can run a task: running → pending."""
    return int(
        session.execute(
            update(PostTask)
            .where(PostTask.status.in_(MACHINE.sources("reclaim_inflight")))
            .values(status=PENDING)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )


def lock_conversation(session: Session, conversation_id: str) -> Conversation | None:
    """Serialize the writers of one conversation's outcome, taken after the task row's lock and
    before any event is inserted. NO KEY UPDATE: it does not conflict with the KEY SHARE lock
    another transaction takes when it inserts an event that references the conversation (a
    FOR UPDATE here deadlocks against that)."""
    return session.scalars(
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .with_for_update(key_share=True)
    ).first()


def record_progress(session: Session, conversation_id: str) -> int:
    """Record the share of tasks done. The caller holds the conversation's lock, so concurrent
    changes are serialized and the percentages only grow."""
    conv = session.get(Conversation, conversation_id)
    tasks = rows(session, conversation_id)
    percent = progress_of(tasks)
    if conv is not None:
        conv.progress = max(conv.progress or 0, 70 + int(30 * percent / 100))
    events.record(
        session,
        conversation_id,
        "post_transcription_progress",
        {
            "percent": percent,
            "done": sorted(n for n, t in tasks.items() if t.status == DONE),
            "failed": sorted(n for n, t in tasks.items() if t.status == FAILED),
            "tasks": {n: t.status for n, t in tasks.items()},
        },
    )
    return percent

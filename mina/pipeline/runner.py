"""Running one post-processing task under its `post_task` row.

Mark running (conditionally: a duplicate message does nothing), emit `{task}_started`, do the
work with tenacity retrying transient errors only, then store the result and emit
`{task}_ready`, or store the error and emit `{task}_failed`. It always returns normally so the
group's completion callback fires; the time limit is enforced by the caller (the actor's
TimeLimit, passed in as `interrupts`) and by the scheduler through `deadline_at`, which the
worker's heartbeat (mina.pipeline.heartbeat) keeps `heartbeat_timeout_seconds` ahead, up to
the time limit: the task of a dead worker is taken back in seconds.

A task of the chain merge → diarize → analytics only starts once the task before it is
terminal: a duplicated or requeued pipeline cannot run diarize beside a merge still running.
It stays pending instead, for the pipeline that runs its predecessor (or the scheduler).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased
from tenacity import (
    RetryCallState,
    Retrying,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from mina import events, metrics
from mina.db import session_scope, utcnow
from mina.errors import MinaError, TransientError
from mina.models import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    TASK_NAMES,
    TASK_TERMINAL,
    Conversation,
    PostTask,
)
from mina.pipeline import heartbeat, post
from mina.pipeline.post import CHAIN, progress_of, task_rows
from mina.settings import Settings

log = logging.getLogger(__name__)

Work = Callable[[], dict[str, Any]]

# A deadlock victim or a dropped connection: the state changes below are conditional and run
# in one transaction each, so running them again is safe.
_db_retry = retry(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.1, max=1),
    reraise=True,
)


class TaskFailed(Exception):
    """The work failed for good; `tries` is how many times it was called."""

    def __init__(self, error: MinaError, tries: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.tries = tries


def predecessor(name: str) -> str | None:
    """The task of the chain that must be terminal before `name` may start."""
    if name in CHAIN and CHAIN.index(name) > 0:
        return CHAIN[CHAIN.index(name) - 1]
    return None


@_db_retry
def begin(conversation_id: str, name: str, settings: Settings) -> int | None:
    """pending → running; returns this run's attempt number, None if not ours to run."""
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}")
    now = utcnow()
    limit = settings.time_limit(name)
    condition = [
        PostTask.conversation_id == conversation_id,
        PostTask.name == name,
        PostTask.status == PENDING,
    ]
    before = predecessor(name)
    if before is not None:
        prev = aliased(PostTask)
        condition.append(
            exists().where(
                prev.conversation_id == conversation_id,
                prev.name == before,
                prev.status.in_(TASK_TERMINAL),
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


def run(
    conversation_id: str,
    name: str,
    work: Work,
    settings: Settings,
    *,
    interrupts: tuple[type[BaseException], ...] = (),
) -> str:
    """Run `work` as task `name`; returns done, failed or skipped. Never raises for the work.

    `interrupts` are the caller's time-limit exceptions (BaseException subclasses): they fail
    the task with a timeout error instead of escaping. The task that finishes last reveals at
    once; the group's completion callback (and the scheduler) run the same idempotent reveal.
    """
    attempt = begin(conversation_id, name, settings)
    if attempt is None:
        log.info("conversation %s: task %s not runnable now, skipped", conversation_id, name)
        return "skipped"
    started = time.monotonic()
    beat = heartbeat.beating(
        lambda: renew_deadline(conversation_id, name, attempt, settings),
        settings,
        f"task {name} of {conversation_id}",
    )
    with beat:
        result, error = _outcome(conversation_id, name, work, settings, interrupts)

    def store() -> int | None:
        return finish(conversation_id, name, attempt, started, result=result, error=error)

    percent = _once_more_if_interrupted(store, interrupts)
    if percent == 100:
        _once_more_if_interrupted(lambda: _reveal(conversation_id, settings), interrupts)
    return "failed" if error else "done"


def renew_deadline(conversation_id: str, name: str, attempt: int, settings: Settings) -> bool:
    """The heartbeat of a running task: `deadline_at` the timeout from now, never past the time
    limit after its start. False once the row is no longer this attempt's."""
    now = utcnow()
    mine = and_(
        PostTask.conversation_id == conversation_id,
        PostTask.name == name,
        PostTask.status == RUNNING,
        PostTask.attempts == attempt,
    )
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


def _outcome(
    conversation_id: str,
    name: str,
    work: Work,
    settings: Settings,
    interrupts: tuple[type[BaseException], ...],
) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None) or (None, error) of running the work under retries and the time limit."""
    try:
        return with_retries(work, settings), None
    except TaskFailed as exc:
        tries = f" after {exc.tries} tries" if exc.tries > 1 else ""
        return None, f"{exc.error.code}: {exc.error.message}{tries}"
    except interrupts:
        return None, f"timeout: over {settings.time_limit(name):g}s"
    except Exception as exc:
        # The one boundary of the workers: a bug in one task's code must fail that task visibly
        # (row, event, log) and let the group's callback fire, not dead-letter the message and
        # leave the reveal waiting for the scheduler.
        log.exception("conversation %s: task %s crashed", conversation_id, name)
        return None, f"internal: {type(exc).__name__}: {str(exc)[:300]}"


T = TypeVar("T")


def _once_more_if_interrupted(
    call: Callable[[], T], interrupts: tuple[type[BaseException], ...]
) -> T:
    """A time limit that expires just as the work ends lands in the bookkeeping instead; it
    fires once per message, so the rolled-back transaction can simply run again."""
    try:
        return call()
    except interrupts:
        return call()


def _reveal(conversation_id: str, settings: Settings) -> None:
    try:
        post.reveal(conversation_id, settings)
    except SQLAlchemyError as exc:
        log.warning("conversation %s: reveal left to the group callback: %s", conversation_id, exc)


def with_retries(work: Work, settings: Settings) -> dict[str, Any]:
    """Call `work`; transient errors are retried with exponential backoff, up to
    `provider_attempts` calls in all. Raises TaskFailed with the last Mina error."""
    tries = 0

    def counted() -> dict[str, Any]:
        nonlocal tries
        tries += 1
        return work()

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("task attempt %d failed transiently (%s); retrying", state.attempt_number, exc)

    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(max(1, settings.provider_attempts)),
        wait=wait_exponential(multiplier=0.2, min=0.2, max=5),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        return retrying(counted)
    except MinaError as exc:
        raise TaskFailed(exc, tries) from exc


@_db_retry
def finish(
    conversation_id: str,
    name: str,
    attempt: int,
    started: float,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> int | None:
    """Store the outcome of this attempt (only if the row is still ours); returns the share of
    tasks now terminal, or None when the row was no longer this attempt's."""
    duration_ms = int((time.monotonic() - started) * 1000)
    now = utcnow()
    with session_scope() as session:
        stored = session.execute(
            update(PostTask)
            .where(
                and_(
                    PostTask.conversation_id == conversation_id,
                    PostTask.name == name,
                    PostTask.status == RUNNING,
                    PostTask.attempts == attempt,
                )
            )
            .values(
                status=FAILED if error else DONE,
                error=error,
                result=result,
                finished_at=now,
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
        percent = _progress(session, conversation_id)
    outcome = "failed" if error else "done"
    metrics.POST_TASK_SECONDS.labels(name, outcome).observe(duration_ms / 1000)
    level = logging.WARNING if error else logging.INFO
    log.log(
        level,
        "conversation %s: task %s %s in %d ms%s",
        conversation_id,
        name,
        "failed" if error else "done",
        duration_ms,
        f": {error}" if error else "",
    )
    return percent


def fail_stuck(session: Session, task: PostTask, reason: str) -> None:
    """Fail a running task whose worker vanished or overran its deadline (the scheduler)."""
    task.status = FAILED
    task.error = reason
    task.finished_at = utcnow()
    session.flush()
    lock_conversation(session, task.conversation_id)
    events.record(
        session, task.conversation_id, f"{task.name}_failed", {"task": task.name, "error": reason}
    )
    _progress(session, task.conversation_id)


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


def _progress(session: Session, conversation_id: str) -> int:
    """Record the share of tasks done. The caller holds the conversation's lock, so concurrent
    finishes are serialized and the percentages only grow."""
    conv = session.get(Conversation, conversation_id)
    tasks = task_rows(session, conversation_id)
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

"""Running one post-processing task under its `post_task` row.

Mark running (conditionally: a duplicate message does nothing), emit `{task}_started`, do the
work with tenacity retrying transient errors only, then store the result and emit
`{task}_ready`, or store the error and emit `{task}_failed`. It always returns normally so the
group's completion callback fires; the time limit is enforced by the caller (the actor's
TimeLimit) and by the scheduler through `deadline_at`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, select, update
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from mina import events
from mina.db import session_scope, utcnow
from mina.errors import MinaError, TransientError
from mina.models import DONE, FAILED, PENDING, RUNNING, TASK_NAMES, Conversation, PostTask
from mina.pipeline.post import progress_of, task_rows
from mina.settings import Settings

log = logging.getLogger(__name__)

Work = Callable[[], dict[str, Any]]


def begin(conversation_id: str, name: str, settings: Settings) -> int | None:
    """pending → running; returns this run's attempt number, None if not ours to run."""
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}")
    now = utcnow()
    limit = settings.time_limit(name)
    with session_scope() as session:
        taken = session.execute(
            update(PostTask)
            .where(
                PostTask.conversation_id == conversation_id,
                PostTask.name == name,
                PostTask.status == PENDING,
            )
            .values(
                status=RUNNING,
                attempts=PostTask.attempts + 1,
                started_at=now,
                finished_at=None,
                deadline_at=now + timedelta(seconds=limit + 5),
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
    """Run `work` as task `name`; returns done, failed or skipped.

    `interrupts` are the caller's time-limit exceptions (BaseException subclasses): they fail
    the task with a timeout error instead of escaping.
    """
    attempt = begin(conversation_id, name, settings)
    if attempt is None:
        log.info("conversation %s: task %s not pending, skipped", conversation_id, name)
        return "skipped"
    started = time.monotonic()
    try:
        result = with_retries(work, settings)
    except MinaError as exc:
        finish(conversation_id, name, attempt, started, error=f"{exc.code}: {exc.message}")
        return "failed"
    except interrupts:
        limit = settings.time_limit(name)
        finish(conversation_id, name, attempt, started, error=f"timeout: over {limit:g}s")
        return "failed"
    finish(conversation_id, name, attempt, started, result=result)
    return "done"


def with_retries(work: Work, settings: Settings) -> dict[str, Any]:
    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(settings.provider_attempts),
        wait=wait_exponential(multiplier=0.2, min=0.2, max=5),
        reraise=True,
    )
    return retrying(work)


def finish(
    conversation_id: str,
    name: str,
    attempt: int,
    started: float,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Store the outcome of this attempt (only if the row is still ours)."""
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
            return False
        if error:
            events.record(
                session, conversation_id, f"{name}_failed", {"task": name, "error": error}
            )
        else:
            events.record(
                session,
                conversation_id,
                f"{name}_ready",
                {"task": name, "duration_ms": duration_ms, "result": result},
            )
        _progress(session, conversation_id)
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
    return True


def fail_stuck(session: Any, task: PostTask, reason: str) -> None:
    """Fail a running task whose worker vanished or overran its deadline (the scheduler)."""
    task.status = FAILED
    task.error = reason
    task.finished_at = utcnow()
    events.record(
        session, task.conversation_id, f"{task.name}_failed", {"task": task.name, "error": reason}
    )
    _progress(session, task.conversation_id)


def _progress(session: Any, conversation_id: str) -> None:
    tasks = task_rows(session, conversation_id)
    percent = progress_of(tasks)
    conv = session.get(Conversation, conversation_id)
    if conv is not None:
        conv.progress = 70 + int(30 * percent / 100)
    events.record(
        session,
        conversation_id,
        "post_transcription_progress",
        {
            "percent": percent,
            "tasks": {n: t.status for n, t in tasks.items()},
        },
    )

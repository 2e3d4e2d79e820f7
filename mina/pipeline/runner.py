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
It stays pending instead, for the pipeline that runs its predecessor (or the scheduler). The
row's changes are mina.pipeline.task_state's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from mina import metrics
from mina.errors import MinaError, TransientError
from mina.pipeline import heartbeat, post, task_state
from mina.settings import Settings

log = logging.getLogger(__name__)

Work = Callable[[], dict[str, Any]]


class TaskFailed(Exception):
    """The work failed for good; `tries` is how many times it was called."""

    def __init__(self, error: MinaError, tries: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.tries = tries


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
    attempt = task_state.begin(conversation_id, name, settings)
    if attempt is None:
        log.info("conversation %s: task %s not runnable now, skipped", conversation_id, name)
        return "skipped"
    started = time.monotonic()
    beat = heartbeat.beating(
        lambda: task_state.renew_deadline(conversation_id, name, attempt, settings),
        settings,
        f"task {name} of {conversation_id}",
    )
    with beat:
        result, error = _outcome(conversation_id, name, work, settings, interrupts)

    duration_ms = int((time.monotonic() - started) * 1000)

    def store() -> int | None:
        percent = task_state.complete(
            conversation_id, name, attempt, duration_ms, result=result, error=error
        )
        if percent is not None:
            _observe(conversation_id, name, duration_ms, error)
        return percent

    percent = _once_more_if_interrupted(store, interrupts)
    if percent == 100:
        _once_more_if_interrupted(lambda: _reveal(conversation_id, settings), interrupts)
    return "failed" if error else "done"


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


def _observe(conversation_id: str, name: str, duration_ms: int, error: str | None) -> None:
    metrics.POST_TASK_SECONDS.labels(name, "failed" if error else "done").observe(
        duration_ms / 1000
    )
    log.log(
        logging.WARNING if error else logging.INFO,
        "conversation %s: task %s %s in %d ms%s",
        conversation_id,
        name,
        "failed" if error else "done",
        duration_ms,
        f": {error}" if error else "",
    )

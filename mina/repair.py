"""Repair jobs (DESIGN §8): everything a crash or a lost message can leave behind.

Each job is idempotent, bounded per run (`scheduler_batch_size`), works from the database alone,
and returns how many things it changed. Rows are picked and changed in one transaction with
`FOR UPDATE SKIP LOCKED` (or through the conditional updates of `mina.pipeline`), so two runs at
once change each thing once. Messages are sent after the commit: they are hints, the rows are the
truth. The scheduler calls the jobs on an interval; the embedded runtime calls `resume` at start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ScalarSelect, exists, func, or_, select

from mina import blobs, events
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import Conflict, NotFound, TransientError
from mina.models import Chunk, Conversation, Event, PostTask
from mina.pipeline import barrier, chunk_state, post, task_state
from mina.pipeline import finish as finish_service
from mina.pipeline.chunk_state import PROCESSING, QUEUED
from mina.pipeline.conversation_state import PENDING, RUNNING, TRANSCRIBED
from mina.settings import Settings
from mina.storage import Storage

log = logging.getLogger(__name__)

#: Poll one chunk's async provider job once (by chunk id). It completes or fails the chunk itself
#: when the provider has an answer, and raises `TransientError` when the provider is unreachable.
ProviderPoll = Callable[[str], None]


def provider_poller(settings: Settings) -> ProviderPoll | None:
    """The poll of async provider jobs whose webhook never came (DESIGN §5, §8).

    None: `Repair.poll_provider_jobs` then uses the provider's own policy for AssemblyAI
    (`mina.pipeline.provider_jobs.poll_overdue`). Tests inject a poll here to drive the generic
    policy.
    """
    return None


@dataclass
class Repair:
    settings: Settings
    dispatcher: Dispatcher
    storage: Storage
    poll_provider: ProviderPoll | None = None

    @property
    def batch(self) -> int:
        return self.settings.scheduler_batch_size

    # --- 1. auto-finish ---------------------------------------------------------------------

    def auto_finish(self, now: datetime | None = None) -> int:
        """Finish open conversations with chunks idle for the timeout: `last_activity_at <= now -
        timeout` (the audited scheduler compared the other way round and caught new ones)."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.settings.idle_finish_seconds)
        with session_scope() as session:
            ids = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.is_finished.is_(False),
                        Conversation.last_activity_at <= cutoff,
                        exists().where(Chunk.conversation_id == Conversation.id),
                    )
                    .order_by(Conversation.last_activity_at)
                    .limit(self.batch)
                )
            )
        done = 0
        for cid in ids:
            try:
                # The same service as POST …/finish; the idle check is repeated under its lock.
                out = finish_service.finish_conversation(
                    cid, None, self.dispatcher, idle_before=cutoff
                )
            except (Conflict, NotFound) as exc:
                log.info("conversation %s: auto-finish skipped: %s", cid, exc)
                continue
            if out["changed"]:
                log.info(
                    "conversation %s: finished after %gs without activity",
                    cid,
                    self.settings.idle_finish_seconds,
                )
                done += 1
        return done

    # --- 2. dispatch ------------------------------------------------------------------------

    def dispatch_stalled(self, now: datetime | None = None, *, delay: float | None = None) -> int:
        """Queue again chunks `queued` longer than the delay or `processing` past their lease;
        fail those that reached the attempt cap (attempts are counted by each claim)."""
        now = now or utcnow()
        wait = self.settings.dispatch_delay_seconds if delay is None else delay
        cutoff = now - timedelta(seconds=wait)
        cap = self.settings.chunk_max_attempts
        stamp = max(now, utcnow())
        send: list[str] = []
        gave_up: dict[str, str] = {}  # chunk id -> conversation id
        with session_scope() as session:
            stalled = session.scalars(
                select(Chunk)
                .where(
                    or_(
                        (Chunk.status == QUEUED) & (Chunk.queued_at <= cutoff),
                        (Chunk.status == PROCESSING) & (Chunk.lease_until < now),
                    )
                )
                .order_by(Chunk.queued_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            for chunk in stalled:
                if chunk.attempts >= cap:
                    reason = f"gave up after {chunk.attempts} attempts"
                    if chunk.status == PROCESSING:
                        reason += " (the worker stopped answering: lease expired)"
                    if chunk.error:
                        reason += f"; last error: {chunk.error}"
                    chunk_state.give_up(session, chunk, reason)
                    gave_up[chunk.id] = chunk.conversation_id
                    log.warning("conversation %s: chunk %d %s", *_chunk(chunk), reason)
                    continue
                if chunk.status == PROCESSING:
                    log.info(
                        "conversation %s: chunk %d lease expired at attempt %d, queued again",
                        *_chunk(chunk),
                        chunk.attempts,
                    )
                # Back to `queued`: no new dispatch before the delay, whoever claims it next.
                chunk_state.requeue_stalled(chunk, stamp)
                send.append(chunk.id)
        if send:
            try:
                self.dispatcher.transcribe(send)
            except TransientError as exc:
                log.warning("dispatch of %d stalled chunk(s) deferred: %s", len(send), exc)
        for cid in sorted(set(gave_up.values())):
            barrier.settle(cid, self.dispatcher)
        return len(send) + len(gave_up)

    # --- 3. barrier -------------------------------------------------------------------------

    def settle_finished(self) -> int:
        """Run the barrier where it should pass but did not (a lost group callback)."""
        chunk_count = _chunk_count()
        with session_scope() as session:
            ids = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.is_finished.is_(True),
                        Conversation.is_all_chunks_transcribed.is_(False),
                        ~exists().where(
                            Chunk.conversation_id == Conversation.id,
                            Chunk.status.not_in(chunk_state.TERMINAL),
                        ),
                        # Still waiting for announced chunks: not ours to settle, and left out
                        # so that they cannot fill every batch and starve the others.
                        chunk_count >= func.coalesce(Conversation.expected_chunks, 0),
                    )
                    .order_by(Conversation.finished_at)
                    .limit(self.batch)
                )
            )
        return sum(1 for cid in ids if barrier.settle(cid, self.dispatcher))

    def give_up_missing(self, now: datetime | None = None) -> int:
        """Go on without announced chunks that never came: a finished conversation still short
        of `expected_chunks` with no activity for `missing_chunk_grace_seconds` (the
        participant's upload queue gave up, the device is gone) would otherwise wait forever.

        `expected_chunks` becomes what arrived, the missing indexes go into the conversation's
        error and a `chunks_missing` event, and the barrier runs; a chunk that comes later is
        refused with 409 (the transcription is complete).
        """
        now = now or utcnow()
        grace = self.settings.missing_chunk_grace_seconds
        cutoff = now - timedelta(seconds=grace)
        with session_scope() as session:
            convs = session.scalars(
                select(Conversation)
                .where(
                    Conversation.is_finished.is_(True),
                    Conversation.is_all_chunks_transcribed.is_(False),
                    Conversation.expected_chunks > _chunk_count(),
                    Conversation.last_activity_at <= cutoff,
                )
                .order_by(Conversation.last_activity_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            changed: list[str] = []
            for conv in convs:
                present = set(
                    session.scalars(select(Chunk.index).where(Chunk.conversation_id == conv.id))
                )
                expected = conv.expected_chunks or 0
                missing = [i for i in range(expected) if i not in present]
                shown = ", ".join(str(i) for i in missing[:20]) + (
                    " …" if len(missing) > 20 else ""
                )
                conv.error = (
                    f"chunk(s) {shown} of {expected} never arrived; went on without them after "
                    f"{grace:g}s without activity"
                )
                conv.expected_chunks = len(present)
                events.record(
                    session, conv.id, "chunks_missing", {"missing": missing, "expected": expected}
                )
                log.warning("conversation %s: %s", conv.id, conv.error)
                changed.append(conv.id)
        for cid in changed:
            barrier.settle(cid, self.dispatcher)
        return len(changed)

    # --- 4. post-processing -----------------------------------------------------------------

    def post_processing(self, now: datetime | None = None, *, delay: float | None = None) -> int:
        """Time out stuck tasks, then start, requeue or reveal (in that order, in one run)."""
        now = now or utcnow()
        overdue, put_back = self._overdue_tasks(now)
        return overdue + self.resume_post_processing(now, delay=delay, requeue=put_back)

    def fail_overdue_tasks(self, now: datetime | None = None) -> int:
        """Tasks `running` past their deadline: their worker died (its heartbeat stopped) or
        hung in a call no time limit can interrupt (past the time limit). Below
        `task_max_attempts` runs the task goes back to `pending` (`resume_post_processing`
        queues it again, the old run can no longer store its result: `finish` is fenced by the
        attempt number); at the cap it fails."""
        return self._overdue_tasks(now or utcnow())[0]

    def _overdue_tasks(self, now: datetime) -> tuple[int, set[str]]:
        """(tasks changed, conversations with a task put back to pending)."""
        cap = self.settings.task_max_attempts
        put_back: set[str] = set()
        with session_scope() as session:
            overdue = session.scalars(
                select(PostTask)
                .where(PostTask.status == task_state.RUNNING, PostTask.deadline_at < now)
                .order_by(PostTask.deadline_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            for task in overdue:
                if task.attempts < cap:
                    task_state.put_back(
                        task,
                        f"attempt {task.attempts} did not finish before its deadline "
                        "(worker gone?); queued again",
                    )
                    put_back.add(task.conversation_id)
                    log.warning(
                        "conversation %s: task %s running past its deadline, attempt %d of %d: "
                        "queued again",
                        task.conversation_id,
                        task.name,
                        task.attempts,
                        cap,
                    )
                    continue
                task_state.time_out(
                    session, task, "timeout: the task did not finish before its deadline"
                )
                log.warning(
                    "conversation %s: task %s failed: running past its deadline",
                    task.conversation_id,
                    task.name,
                )
            return len(overdue), put_back

    def resume_post_processing(
        self,
        now: datetime | None = None,
        *,
        delay: float | None = None,
        requeue: set[str] | None = None,
    ) -> int:
        """Start what never started, reveal where every task is terminal, requeue pending tasks
        whose last start is older than the delay, and at once those of `requeue` (a task whose
        worker died was just put back: nothing else will queue it)."""
        now = now or utcnow()
        wait = self.settings.dispatch_delay_seconds if delay is None else delay
        recent = now - timedelta(seconds=wait)
        task_of = PostTask.conversation_id == Conversation.id
        with session_scope() as session:
            never_started = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.is_all_chunks_transcribed.is_(True),
                        Conversation.status == TRANSCRIBED,
                        Conversation.processing_status == PENDING,
                    )
                    .order_by(Conversation.transcribed_at)
                    .limit(self.batch)
                )
            )
            to_reveal = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.processing_status == RUNNING,
                        exists().where(task_of),
                        ~exists().where(task_of, PostTask.status.not_in(task_state.TERMINAL)),
                    )
                    .limit(self.batch)
                )
            )
            to_requeue = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.processing_status == RUNNING,
                        exists().where(task_of, PostTask.status == task_state.PENDING),
                        ~exists().where(
                            Event.conversation_id == Conversation.id,
                            Event.type == "post_transcription_started",
                            Event.created_at > recent,
                        ),
                    )
                    .limit(self.batch)
                )
            )
        changed = sum(1 for cid in never_started if post.start(cid, self.dispatcher))
        changed += sum(1 for cid in to_reveal if post.reveal(cid, self.settings))
        for cid in sorted(set(to_requeue) | (requeue or set())):
            changed += int(self._requeue_tasks(cid))
        return changed

    def _requeue_tasks(self, conversation_id: str) -> bool:
        with session_scope() as session:
            tasks = task_state.rows(session, conversation_id)
        pending = [n for n, t in tasks.items() if t.status == task_state.PENDING]
        if not pending or not post.dispatch(conversation_id, pending, self.dispatcher):
            return False
        with session_scope() as session:
            events.record(
                session,
                conversation_id,
                "post_transcription_started",
                {"tasks": pending, "requeued": True},
            )
        log.info("conversation %s: tasks %s queued again", conversation_id, ", ".join(pending))
        return True

    # --- 5. relay ---------------------------------------------------------------------------

    def relay(self, now: datetime | None = None, *, age_seconds: float = 5.0) -> int:
        """Emit ledger events no process emitted after its commit (none without an emitter)."""
        now = now or utcnow()
        if not events.relay.active:
            return 0
        with session_scope() as session:
            return events.emit_unemitted(session, now - timedelta(seconds=age_seconds), self.batch)

    # --- 6. blobs ---------------------------------------------------------------------------

    def sweep_blobs(self, now: datetime | None = None) -> int:
        """Delete blobs no row references, once older than the grace period."""
        return blobs.sweep(self.storage, now or utcnow(), self.settings, limit=self.batch)

    # --- 7. async provider jobs -------------------------------------------------------------

    def poll_provider_jobs(self, now: datetime | None = None) -> int:
        """Poll jobs submitted to an async provider whose webhook did not come in time; fail
        the chunk after `provider_job_max_polls` polls. Nothing without a poller."""
        if self.poll_provider is None:
            if self.settings.transcriber != "assemblyai":
                return 0
            # The provider's own policy: redeliver stored webhooks whose message was lost,
            # spread the polls over the timeout, fail at the cap (mina.pipeline.provider_jobs).
            from mina.pipeline import provider_jobs

            return provider_jobs.poll_overdue(self.settings, self.dispatcher, now)
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.settings.provider_job_timeout_seconds)
        polls = self.settings.provider_job_max_polls
        to_poll: list[tuple[str, str]] = []
        gave_up: set[str] = set()
        with session_scope() as session:
            late = session.scalars(
                select(Chunk)
                .where(
                    Chunk.status == PROCESSING,
                    Chunk.provider_job_id.is_not(None),
                    Chunk.provider_submitted_at <= cutoff,
                )
                .order_by(Chunk.provider_submitted_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            for chunk in late:
                if chunk.provider_polls >= polls:
                    reason = (
                        f"{chunk.provider} job {chunk.provider_job_id}: no result after "
                        f"{self.settings.provider_job_timeout_seconds:g}s and {polls} poll(s)"
                    )
                    chunk_state.give_up(session, chunk, reason)
                    gave_up.add(chunk.conversation_id)
                    log.warning("conversation %s: chunk %d %s", *_chunk(chunk), reason)
                else:
                    chunk_state.count_poll(chunk)
                    to_poll.append((chunk.id, chunk.conversation_id))
        for chunk_id, cid in to_poll:
            try:
                self.poll_provider(chunk_id)
            except TransientError as exc:
                log.warning("conversation %s: poll of chunk %s failed: %s", cid, chunk_id, exc)
        for cid in sorted(gave_up):
            barrier.settle(cid, self.dispatcher)
        return len(to_poll) + len(gave_up)

    # --- start of the embedded process --------------------------------------------------------

    def reclaim_inflight(self) -> int:
        """At start of the sole embedded process: nothing else can hold a lease or a task."""
        with session_scope() as session:
            chunks = chunk_state.reclaim_inflight(session)
            tasks = task_state.reclaim_inflight(session)
        if chunks or tasks:
            log.info("resumed %d chunk(s) and %d task(s) left in flight", chunks, tasks)
        return int(chunks) + int(tasks)

    def run_all(self, now: datetime | None = None) -> dict[str, int]:
        """Every job once, in the order one run needs (finish → dispatch → barrier → reveal)."""
        now = now or utcnow()
        return {
            "auto_finish": self.auto_finish(now),
            "dispatch": self.dispatch_stalled(now),
            "barrier": self.settle_finished(),
            "post_processing": self.post_processing(now),
            "relay": self.relay(now),
            "blobs": self.sweep_blobs(now),
            "provider_jobs": self.poll_provider_jobs(now),
            "missing_chunks": self.give_up_missing(now),
        }

    def resume(self) -> dict[str, int]:
        """Everything in flight is queued again at once (the embedded runtime's start)."""
        start = utcnow()
        reclaimed = self.reclaim_inflight()
        dispatched = 0
        while True:  # not bounded: a start queues everything the database holds
            sent = self.dispatch_stalled(start, delay=0)
            dispatched += sent
            if sent < self.batch:
                break
        return {
            "reclaimed": reclaimed,
            "dispatch": dispatched,
            "barrier": self.settle_finished(),
            "post_processing": self.resume_post_processing(utcnow(), delay=0),
        }


def _chunk_count() -> ScalarSelect[int]:
    """The number of chunks of the conversation in the enclosing query."""
    return (
        select(func.count())
        .select_from(Chunk)
        .where(Chunk.conversation_id == Conversation.id)
        .scalar_subquery()
    )


def _chunk(chunk: Chunk) -> tuple[str, int]:
    return chunk.conversation_id, chunk.index

"""Repair jobs (DESIGN §8): everything a crash or a lost message can leave behind.

Each job is idempotent, bounded per run (`scheduler_batch_size`), works from the database alone,
and returns how many things it changed. The scheduler calls them on an interval; the embedded
runtime calls them once at start with no delays (`resume`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update

from mina import events
from mina.db import session_scope, utcnow
from mina.dispatch import Dispatcher
from mina.errors import Conflict, NotFound, TransientError
from mina.models import (
    CHUNK_TERMINAL,
    PENDING,
    PROCESSING,
    QUEUED,
    RUNNING,
    TASK_TERMINAL,
    TRANSCRIBED,
    Chunk,
    Conversation,
    Event,
    PostTask,
)
from mina.pipeline import barrier, post
from mina.pipeline import chunks as chunk_state
from mina.pipeline import finish as finish_service
from mina.pipeline.runner import fail_stuck
from mina.settings import Settings
from mina.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Repair:
    settings: Settings
    dispatcher: Dispatcher
    storage: Storage

    @property
    def batch(self) -> int:
        return self.settings.scheduler_batch_size

    def auto_finish(self, now: datetime | None = None) -> int:
        """Finish conversations idle for at least the idle timeout (`<=`, not `>=`)."""
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
                if finish_service.finish(cid, None, self.dispatcher)["changed"]:
                    log.info(
                        "conversation %s: finished after %ss idle",
                        cid,
                        self.settings.idle_finish_seconds,
                    )
                    done += 1
            except (Conflict, NotFound) as exc:
                log.info("conversation %s: auto-finish skipped: %s", cid, exc)
        return done

    def dispatch_stalled(self, now: datetime | None = None, *, delay: float | None = None) -> int:
        """Queue again chunks `queued` too long or `processing` past their lease."""
        now = now or utcnow()
        wait = self.settings.dispatch_delay_seconds if delay is None else delay
        cutoff = now - timedelta(seconds=wait)
        with session_scope() as session:
            stalled = session.scalars(
                select(Chunk)
                .where(
                    or_(
                        and_(Chunk.status == QUEUED, Chunk.queued_at <= cutoff),
                        and_(Chunk.status == PROCESSING, Chunk.lease_until < now),
                    )
                )
                .order_by(Chunk.queued_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            send: list[str] = []
            for chunk in stalled:
                if chunk.attempts >= self.settings.chunk_max_attempts:
                    chunk_state.give_up(
                        session,
                        chunk,
                        f"gave up after {chunk.attempts} attempts (last error: {chunk.error})",
                    )
                else:
                    chunk.queued_at = now  # not again before the next delay
                    send.append(chunk.id)
            gave_up = {c.conversation_id for c in stalled if c.status in CHUNK_TERMINAL}
        if send:
            try:
                self.dispatcher.transcribe(send)
            except TransientError as exc:
                log.warning("dispatch of %d stalled chunks failed: %s", len(send), exc)
                return 0
        for cid in gave_up:
            barrier.settle(cid, self.dispatcher)
        return len(send) + len(gave_up)

    def settle_finished(self) -> int:
        """Run the barrier where a group callback may have been lost."""
        with session_scope() as session:
            ids = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.is_finished.is_(True),
                        Conversation.is_all_chunks_transcribed.is_(False),
                        ~exists().where(
                            Chunk.conversation_id == Conversation.id,
                            Chunk.status.not_in(CHUNK_TERMINAL),
                        ),
                    )
                    .limit(self.batch)
                )
            )
        return sum(1 for cid in ids if barrier.settle(cid, self.dispatcher))

    def fail_overdue_tasks(self, now: datetime | None = None) -> int:
        now = now or utcnow()
        with session_scope() as session:
            overdue = session.scalars(
                select(PostTask)
                .where(PostTask.status == RUNNING, PostTask.deadline_at < now)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            for task in overdue:
                fail_stuck(session, task, "timeout: the task did not finish before its deadline")
            return len(overdue)

    def resume_post_processing(
        self, now: datetime | None = None, *, delay: float | None = None
    ) -> int:
        """Start what never started, requeue pending tasks, reveal where everything is done."""
        now = now or utcnow()
        wait = self.settings.dispatch_delay_seconds if delay is None else delay
        changed = 0
        with session_scope() as session:
            never_started = list(
                session.scalars(
                    select(Conversation.id)
                    .where(
                        Conversation.is_all_chunks_transcribed.is_(True),
                        Conversation.status == TRANSCRIBED,
                        Conversation.processing_status == PENDING,
                    )
                    .limit(self.batch)
                )
            )
            running = list(
                session.scalars(
                    select(Conversation.id)
                    .where(Conversation.processing_status == RUNNING)
                    .limit(self.batch)
                )
            )
        changed += sum(1 for cid in never_started if post.start(cid, self.dispatcher))
        for cid in running:
            with session_scope() as session:
                tasks = post.task_rows(session, cid)
                last_start = session.scalar(
                    select(Event.created_at)
                    .where(Event.conversation_id == cid, Event.type == "post_transcription_started")
                    .order_by(Event.id.desc())
                    .limit(1)
                )
            if tasks and all(t.status in TASK_TERMINAL for t in tasks.values()):
                changed += int(post.reveal(cid, self.settings))
                continue
            pending = [n for n, t in tasks.items() if t.status == PENDING]
            stale = last_start is None or last_start <= now - timedelta(seconds=wait)
            if pending and stale and post.dispatch(cid, pending, self.dispatcher):
                with session_scope() as session:
                    events.record(
                        session,
                        cid,
                        "post_transcription_started",
                        {"tasks": pending, "requeued": True},
                    )
                changed += 1
        return changed

    def relay(self, now: datetime | None = None, *, age_seconds: float = 5.0) -> int:
        now = now or utcnow()
        if not events.relay.active:
            return 0
        with session_scope() as session:
            return events.emit_unemitted(session, now - timedelta(seconds=age_seconds), self.batch)

    def sweep_blobs(self, now: datetime | None = None) -> int:
        """Delete blobs no row references, once older than the grace period."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.settings.blob_grace_seconds)
        deleted = 0
        for prefix in ("conversations/", "pieces/"):
            for blob in self.storage.list(prefix):
                if deleted >= self.batch:
                    return deleted
                if blob.modified > cutoff or self._referenced(blob.key):
                    continue
                self.storage.delete(blob.key)
                log.info("orphan blob %s deleted", blob.key)
                deleted += 1
        return deleted

    def _referenced(self, key: str) -> bool:
        with session_scope() as session:
            if key.startswith("pieces/"):
                chunk_id = key.split("/")[1]
                return bool(
                    session.scalar(
                        select(Chunk.id).where(Chunk.id == chunk_id, Chunk.status == PROCESSING)
                    )
                )
            return bool(
                session.scalar(select(Chunk.id).where(Chunk.storage_key == key).limit(1))
                or session.scalar(
                    select(Conversation.id).where(Conversation.merged_audio_key == key).limit(1)
                )
            )

    def reclaim_inflight(self) -> int:
        """At start of the sole embedded process: nothing else can hold a lease or a task."""
        with session_scope() as session:
            chunks = session.execute(
                update(Chunk)
                .where(Chunk.status == PROCESSING)
                .values(status=QUEUED, lease_until=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            tasks = session.execute(
                update(PostTask)
                .where(PostTask.status == RUNNING)
                .values(status=PENDING)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        if chunks or tasks:
            log.info("resumed %d chunk(s) and %d task(s) left in flight", chunks, tasks)
        return int(chunks) + int(tasks)

    def run_all(self, now: datetime | None = None) -> dict[str, int]:
        now = now or utcnow()
        return {
            "auto_finish": self.auto_finish(now),
            "dispatch": self.dispatch_stalled(now),
            "barrier": self.settle_finished(),
            "overdue_tasks": self.fail_overdue_tasks(now),
            "post_processing": self.resume_post_processing(now),
            "relay": self.relay(now),
            "blobs": self.sweep_blobs(now),
        }

    def resume(self) -> dict[str, int]:
        """Everything in flight is queued again at once (the embedded runtime's start)."""
        now = utcnow()
        return {
            "reclaimed": self.reclaim_inflight(),
            "dispatch": self.dispatch_stalled(now, delay=0),
            "barrier": self.settle_finished(),
            "post_processing": self.resume_post_processing(now, delay=0),
        }

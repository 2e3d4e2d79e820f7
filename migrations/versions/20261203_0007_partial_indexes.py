"""partial indexes for the scheduler's jobs and the operator's filters at scale (issue #20)

Each covers the few rows a job or a filter looks for among the many settled ones
(docs/scaling.md; bench/seed_scale.py prints the plans at 100,000 conversations).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, column, predicate on PostgreSQL, predicate on SQLite or None: the same)
INDEXES = (
    (
        "ix_conversation_awaiting_barrier",
        "conversation",
        "last_activity_at",
        "is_finished IS true AND is_all_chunks_transcribed IS false",
        "is_finished IS 1 AND is_all_chunks_transcribed IS 0",
    ),
    (
        "ix_conversation_processing_active",
        "conversation",
        "last_activity_at",
        "processing_status IN ('pending', 'running')",
        None,
    ),
    ("ix_conversation_revealed", "conversation", "revealed_at", "revealed_at IS NOT NULL", None),
    (
        "ix_conversation_failed",
        "conversation",
        "created_at",
        "status = 'transcription_failed' OR processing_status IN ('failed', 'partial')",
        None,
    ),
    (
        "ix_chunk_unsettled",
        "chunk",
        "conversation_id",
        "status NOT IN ('transcribed', 'failed')",
        None,
    ),
    ("ix_chunk_failed", "chunk", "conversation_id", "status = 'failed'", None),
    ("ix_chunk_transcribed_finished", "chunk", "finished_at", "status = 'transcribed'", None),
    ("ix_post_task_failed", "post_task", "conversation_id", "status = 'failed'", None),
)


def upgrade() -> None:
    for name, table, column, where, sqlite_where in INDEXES:
        op.create_index(
            name,
            table,
            [column],
            unique=False,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(sqlite_where or where),
        )


def downgrade() -> None:
    for name, table, _, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

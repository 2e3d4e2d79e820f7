"""meeting memory: utterance (the search index: tsvector + GIN on PostgreSQL, FTS5 on SQLite)
and audio_erasure (conversations whose audio was deleted by retention)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TSV = postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite")

# SQLite: an external-content FTS5 table over utterance.text, kept in step by triggers.
_FTS = (
    "CREATE VIRTUAL TABLE utterance_fts USING fts5(text, content='utterance', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER utterance_fts_insert AFTER INSERT ON utterance BEGIN "
    "INSERT INTO utterance_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER utterance_fts_delete AFTER DELETE ON utterance BEGIN "
    "INSERT INTO utterance_fts(utterance_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "END",
    "CREATE TRIGGER utterance_fts_update AFTER UPDATE OF text ON utterance BEGIN "
    "INSERT INTO utterance_fts(utterance_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO utterance_fts(rowid, text) VALUES (new.id, new.text); END",
)


def upgrade() -> None:
    op.create_table(
        "utterance",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(32), nullable=True),
        sa.Column("speaker_name", sa.String(80), nullable=True),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("config", sa.String(24), nullable=False),
        sa.Column("meeting_at", sa.DateTime(), nullable=False),
        sa.Column("tsv", _TSV, nullable=True),
    )
    op.create_index("ix_utterance_conversation", "utterance", ["conversation_id", "position"])
    op.create_index("ix_utterance_meeting_at", "utterance", ["meeting_at"])
    op.create_index("ix_utterance_tsv", "utterance", ["tsv"], postgresql_using="gin")
    op.create_table(
        "audio_erasure",
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversation.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("erased_at", sa.DateTime(), nullable=False),
        sa.Column("blobs", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(24), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in _FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("utterance_fts_update", "utterance_fts_delete", "utterance_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS utterance_fts")
    op.drop_table("audio_erasure")
    op.drop_index("ix_utterance_tsv", table_name="utterance")
    op.drop_index("ix_utterance_meeting_at", table_name="utterance")
    op.drop_index("ix_utterance_conversation", table_name="utterance")
    op.drop_table("utterance")

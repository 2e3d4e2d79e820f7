"""conversation.speaker_names: names learned from the conversation or given through the API

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversation", sa.Column("speaker_names", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("conversation", "speaker_names")

"""chunk.warnings (what operators should know about a transcribed chunk) and chunk.seam (the
words of the boundary before the chunk, transcribed again across it)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("chunk", sa.Column("warnings", sa.JSON(), nullable=True))
    op.add_column("chunk", sa.Column("seam", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("chunk", "seam")
    op.drop_column("chunk", "warnings")

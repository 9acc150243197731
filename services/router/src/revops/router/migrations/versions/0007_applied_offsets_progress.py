"""applied_offsets.advanced_at: when each partition last moved

A lead held for CRM state waits out the bound only for a partition that stopped moving;
one that is catching up (a backlog after a restart) is waited for, up to a longer limit.

Revision ID: 0007_applied_offsets_progress
Revises: 0006_account_names
Create Date: 2026-12-03 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_applied_offsets_progress"
down_revision: str | None = "0006_account_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "applied_offsets",
        sa.Column(
            "advanced_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        schema="router",
    )


def downgrade() -> None:
    op.drop_column("applied_offsets", "advanced_at", schema="router")

"""a partial index on the outbox's pending rows (the relay's poll)

Revision ID: c1a0e7b5d201
Revises: e85f3cc5b2a6
Create Date: 2026-11-29 22:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c1a0e7b5d201"
down_revision: str | None = "e85f3cc5b2a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "outbox_pending",
        "outbox",
        ["id"],
        schema="router",
        postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("outbox_pending", table_name="outbox", schema="router")

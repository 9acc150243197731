"""accounts and opportunities merged field by field: each field's winning change

Revision ID: 0003_field_times
Revises: 0002_routing_trust
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_field_times"
down_revision: str | None = "0002_routing_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("accounts", "opportunities"):
        op.add_column(
            table,
            sa.Column("field_times", sa.JSON(), nullable=False, server_default="{}"),
            schema="router",
        )


def downgrade() -> None:
    for table in ("accounts", "opportunities"):
        op.drop_column(table, "field_times", schema="router")

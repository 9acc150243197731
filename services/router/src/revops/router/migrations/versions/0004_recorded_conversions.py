"""recorded conversions and transfers: what a rebuild re-applies besides lead routing

Revision ID: 0004_recorded_conversions
Revises: 0003_field_times
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_recorded_conversions"
down_revision: str | None = "0003_field_times"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recorded_conversions",
        sa.Column("conversion_id", sa.String(200), primary_key=True),
        sa.Column("assignment", sa.JSON(), nullable=False),
        schema="router",
    )
    op.create_table(
        "recorded_transfers",
        sa.Column("change_id", sa.String(200), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transfer", sa.JSON(), nullable=False),
        schema="router",
    )
    op.create_index(
        "ix_router_recorded_transfers_account_id",
        "recorded_transfers",
        ["account_id"],
        schema="router",
    )
    op.create_table(
        "recorded_moves",
        sa.Column("lead_id", sa.String(64), primary_key=True),
        sa.Column("transferred_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("from_sdr_id", sa.String(64)),
        sa.Column("to_sdr_id", sa.String(64), nullable=False),
        schema="router",
    )


def downgrade() -> None:
    op.drop_table("recorded_moves", schema="router")
    op.drop_index("ix_router_recorded_transfers_account_id", "recorded_transfers", schema="router")
    op.drop_table("recorded_transfers", schema="router")
    op.drop_table("recorded_conversions", schema="router")

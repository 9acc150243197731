"""routing you can trust: applied offsets, leads held for CRM state, the rotation pointer,
the reps' CRM owner ids

Revision ID: 0002_routing_trust
Revises: c1a0e7b5d201
Create Date: 2026-12-03 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_routing_trust"
down_revision: str | None = "c1a0e7b5d201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reps", sa.Column("salesforce_user_id", sa.String(64)), schema="router")
    op.add_column("reps", sa.Column("hubspot_owner_id", sa.String(64)), schema="router")
    op.add_column(
        "queues",
        sa.Column("rotation", sa.JSON(), nullable=False, server_default="{}"),
        schema="router",
    )
    op.create_table(
        "applied_offsets",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
        schema="router",
    )
    op.create_table(
        "held_leads",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("person", sa.JSON(), nullable=False),
        sa.Column("watermark", sa.JSON(), nullable=False),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        schema="router",
    )
    op.create_index("ix_held_leads_since", "held_leads", ["held_since"], schema="router")


def downgrade() -> None:
    op.drop_index("ix_held_leads_since", table_name="held_leads", schema="router")
    op.drop_table("held_leads", schema="router")
    op.drop_table("applied_offsets", schema="router")
    op.drop_column("queues", "rotation", schema="router")
    op.drop_column("reps", "hubspot_owner_id", schema="router")
    op.drop_column("reps", "salesforce_user_id", schema="router")

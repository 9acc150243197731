"""owner clocks: since when a later decision's owner has the lead, and the reps the SLA
escalation took it from

Revision ID: 0014_owner_clocks
Revises: 0013_reporting_lead_columns
Create Date: 2026-12-03 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0014_owner_clocks"
down_revision: str | None = "0013_reporting_lead_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owner_clocks",
        sa.Column("lead_id", sa.String(64), primary_key=True),
        sa.Column("owner_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalated_from", ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        schema="router",
    )


def downgrade() -> None:
    op.drop_table("owner_clocks", schema="router")

"""the reps' working hours: when each rep is on shift, in their time zone (null: always)

Revision ID: 0011_rep_working_hours
Revises: 0010_held_leads_email
Create Date: 2026-12-03 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_rep_working_hours"
down_revision: str | None = "0010_held_leads_email"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reps", sa.Column("working_hours", sa.JSON(), nullable=True), schema="router")


def downgrade() -> None:
    op.drop_column("reps", "working_hours", schema="router")

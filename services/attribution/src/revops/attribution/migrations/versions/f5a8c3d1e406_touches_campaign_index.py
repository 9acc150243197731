"""an index on the touches' campaigns: the campaign list grouped from it alone

Revision ID: f5a8c3d1e406
Revises: e4f7a1c2b305
Create Date: 2026-12-03 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f5a8c3d1e406"
down_revision: str | None = "e4f7a1c2b305"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "touches_campaign",
        "touches",
        ["campaign_id", "person_id", "occurred_at"],
        schema="attribution",
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("touches_campaign", table_name="touches", schema="attribution")

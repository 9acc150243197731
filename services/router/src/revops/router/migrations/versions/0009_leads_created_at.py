"""an index on the leads' arrival (created_at, id): the lead lists and the console page by it

Revision ID: 0009_leads_created_at
Revises: 0008_reporting_views
Create Date: 2026-12-03 16:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_leads_created_at"
down_revision: str | None = "0008_reporting_views"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_leads_created_at", "leads", ["created_at", "id"], schema="router")


def downgrade() -> None:
    op.drop_index("ix_leads_created_at", table_name="leads", schema="router")

"""a touch keeps the first page seen and its referrer when the form's sender knows them

Revision ID: e4f7a1c2b305
Revises: d2b7e4c9a103
Create Date: 2026-12-03 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4f7a1c2b305"
down_revision: str | None = "d2b7e4c9a103"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("touches", sa.Column("first_page_url", sa.Text()), schema="attribution")
    op.add_column("touches", sa.Column("first_referrer", sa.Text()), schema="attribution")


def downgrade() -> None:
    op.drop_column("touches", "first_referrer", schema="attribution")
    op.drop_column("touches", "first_page_url", schema="attribution")

"""an index for the opportunity list's forecast-category filter, in its order (close date)

Revision ID: a7c3e9d1f406
Revises: f6a9b2d4c305
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c3e9d1f406"
down_revision: str | None = "f6a9b2d4c305"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["forecast_category", "close_date", "opportunity_id"]


def upgrade() -> None:
    op.create_index("opportunities_forecast", "opportunities", COLUMNS, schema="renewals")


def downgrade() -> None:
    op.drop_index("opportunities_forecast", table_name="opportunities", schema="renewals")

"""history rows know when the next version begins (as-of queries without a sort)

Revision ID: b3c1f0a2d4e5
Revises: d94dc8578192
Create Date: 2026-11-22 08:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3c1f0a2d4e5"
down_revision: str | None = "d94dc8578192"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "opportunity_history",
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        schema="renewals",
    )
    # Rows written before this revision: each ends where its successor begins.
    op.execute(
        """
        UPDATE renewals.opportunity_history h
           SET valid_to = n.next_at
          FROM (SELECT event_id,
                       lead(at) OVER (PARTITION BY opportunity_id ORDER BY at, event_id)
                         AS next_at
                  FROM renewals.opportunity_history) n
         WHERE n.event_id = h.event_id
        """
    )


def downgrade() -> None:
    op.drop_column("opportunity_history", "valid_to", schema="renewals")

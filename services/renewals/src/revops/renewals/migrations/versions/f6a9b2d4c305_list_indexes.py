"""indexes for the lists: opportunities by close date, by status or account in that order;
accounts by tier; renewals by status and close date; onboardings by when they opened

Revision ID: f6a9b2d4c305
Revises: e5f8a1c3b204
Create Date: 2026-12-03 23:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f6a9b2d4c305"
down_revision: str | None = "e5f8a1c3b204"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "opportunities_close": ("opportunities", ["close_date", "opportunity_id"]),
    "opportunities_status": ("opportunities", ["stage_kind", "close_date", "opportunity_id"]),
    "opportunities_account": ("opportunities", ["account_id", "close_date", "opportunity_id"]),
    "accounts_tier": ("accounts", ["tier", "account_id"]),
    "renewals_status": ("renewals", ["status", "close_date", "renewal_id"]),
    "onboardings_opened": ("onboardings", ["opened_at", "id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, schema="renewals")


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table, schema="renewals")

"""account names for matching leads by company name; each lead's company and match score

Revision ID: 0006_account_names
Revises: 0005_routing_policies
Create Date: 2026-12-03 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from revops.router.domain.company_names import blocking_key, normalise_company

revision: str = "0006_account_names"
down_revision: str | None = "0005_routing_policies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    names = op.create_table(
        "account_names",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("block", sa.String(255), nullable=False),
        schema="router",
    )
    op.create_index("ix_router_account_names_block", "account_names", ["block"], schema="router")
    op.add_column("leads", sa.Column("company", sa.String(255)), schema="router")
    op.add_column("leads", sa.Column("match_score", sa.Float()), schema="router")
    # The accounts the router already knows, named as the new ones will be.
    rows = op.get_bind().execute(sa.text("SELECT id, name FROM router.accounts"))
    keys = [(str(i), normalise_company(n)) for i, n in rows if n]
    if keys:
        op.bulk_insert(
            names,
            [
                {"account_id": i, "name_key": k[:255], "block": blocking_key(k)[:255]}
                for i, k in keys
                if k
            ],
        )


def downgrade() -> None:
    op.drop_column("leads", "match_score", schema="router")
    op.drop_column("leads", "company", schema="router")
    op.drop_table("account_names", schema="router")

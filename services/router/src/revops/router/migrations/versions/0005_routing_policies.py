"""routing policies: the versions applied, and each lead's territory and policy version

Revision ID: 0005_routing_policies
Revises: 0004_recorded_conversions
Create Date: 2026-12-03 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_routing_policies"
down_revision: str | None = "0004_recorded_conversions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEAD_COLUMNS = (
    ("state", sa.String(100)),
    ("employees", sa.Integer()),
    ("segment", sa.String(100)),
    ("policy_version", sa.Integer()),
    ("territory", sa.String(100)),
)


def upgrade() -> None:
    op.create_table(
        "routing_policies",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(200)),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        schema="router",
    )
    for name, type_ in _LEAD_COLUMNS:
        op.add_column("leads", sa.Column(name, type_), schema="router")


def downgrade() -> None:
    for name, _ in reversed(_LEAD_COLUMNS):
        op.drop_column("leads", name, schema="router")
    op.drop_table("routing_policies", schema="router")

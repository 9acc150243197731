"""indexes for the read lists: leads by queue, owner and rule in arrival order, the SLA
breaches' total by range reads, and the owner write-backs apart from the outbox's events

Revision ID: 0012_list_indexes
Revises: 0011_rep_working_hours
Create Date: 2026-12-03 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_list_indexes"
down_revision: str | None = "0011_rep_working_hours"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILTERS = {"ix_leads_queue": "queue", "ix_leads_owner": "owner_id", "ix_leads_rule": "rule"}
STILL_RUNNING = {
    "ix_leads_never_touched": "first_touch_at IS NULL AND converted_at IS NULL",
    "ix_leads_status_never_changed": "first_status_change_at IS NULL AND converted_at IS NULL",
}
WRITEBACKS = "destination IN ('hubspot_owner', 'salesforce_owner')"
TOOK = {
    "ix_leads_first_touch_took": "first_touch_at",
    "ix_leads_first_status_change_took": "first_status_change_at",
}


def upgrade() -> None:
    for name, column in FILTERS.items():
        op.create_index(name, "leads", [column, "created_at", "id"], schema="router")
    for name, where in STILL_RUNNING.items():
        op.create_index(
            name, "leads", ["created_at"], schema="router", postgresql_where=sa.text(where)
        )
    op.create_index(
        "ix_leads_converted_at",
        "leads",
        ["converted_at"],
        schema="router",
        postgresql_where=sa.text("converted_at IS NOT NULL"),
    )
    for name, column in TOOK.items():
        op.execute(
            f"CREATE INDEX {name} ON router.leads "
            f"((least({column}, converted_at) - created_at))"
            f" INCLUDE ({column}, created_at, converted_at)"
        )
    op.create_index(
        "outbox_writebacks",
        "outbox",
        ["id"],
        schema="router",
        postgresql_include=["sent_at", "failed_at"],
        postgresql_where=sa.text(WRITEBACKS),
    )


def downgrade() -> None:
    op.drop_index("outbox_writebacks", table_name="outbox", schema="router")
    for name in [*FILTERS, *STILL_RUNNING, "ix_leads_converted_at", *TOOK]:
        op.drop_index(name, table_name="leads", schema="router")

"""an index on the held leads' (email, held_since, event_id): the release and each batch look
a lead up by its email

Revision ID: 0010_held_leads_email
Revises: 0009_leads_created_at
Create Date: 2026-12-03 18:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_held_leads_email"
down_revision: str | None = "0009_leads_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Without it, the release's "no older lead of this email is held" was a scan of every
    # held row for each candidate, and a batch's look-up of its emails a scan too: with
    # two routers a third of the leads are held for a moment, hundreds at once.
    op.create_index(
        "ix_held_leads_email", "held_leads", ["email", "held_since", "event_id"], schema="router"
    )


def downgrade() -> None:
    op.drop_index("ix_held_leads_email", table_name="held_leads", schema="router")

"""the outbox's pending-rows index under the shared library's name

The router had its own (ix_outbox_pending) before the library gave every service one
(outbox_pending): renamed, not duplicated.

Revision ID: c1a0e7b5d201
Revises: e85f3cc5b2a6
Create Date: 2026-11-29 22:25:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c1a0e7b5d201"
down_revision: str | None = "e85f3cc5b2a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER INDEX router.ix_outbox_pending RENAME TO outbox_pending")


def downgrade() -> None:
    op.execute("ALTER INDEX router.outbox_pending RENAME TO ix_outbox_pending")

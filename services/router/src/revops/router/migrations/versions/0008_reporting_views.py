"""the reporting views of leads and their routing, and of conversions (docs/REPORTING.md)

Revision ID: 0008_reporting_views
Revises: 0007_applied_offsets_progress
Create Date: 2026-12-03 15:30:00
"""

from collections.abc import Sequence

from revops.events.reporting import create_views, drop_views

revision: str = "0008_reporting_views"
down_revision: str | None = "0007_applied_offsets_progress"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    "leads": """
        SELECT id AS lead_id, email, account_id, hubspot_id, salesforce_id,
               match AS account_match, country, region, form_type, is_consultant, status,
               owner_id, owner_role, rule AS routing_rule, reason AS routing_reason,
               queue, priority, created_at, routed_at, first_touch_at,
               first_status_change_at, converted_at
          FROM router.leads
    """,
    "lead_conversions": """
        SELECT lead_id, account_id, opportunity_id, ae_id, rule AS assignment_rule,
               reason AS assignment_reason, sao_sdr_id, converted_at
          FROM router.conversions
    """,
}


def upgrade() -> None:
    create_views(VIEWS)


def downgrade() -> None:
    drop_views(list(VIEWS))

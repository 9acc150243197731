"""reporting.leads gains what routing policies and company-name matching added to a lead:
state, employees and segment as given, the policy version and territory that decided,
the company given and the account name's match score (docs/REPORTING.md)

Revision ID: 0013_reporting_lead_columns
Revises: 0012_list_indexes
Create Date: 2026-12-03 23:45:00
"""

from collections.abc import Sequence

from revops.events.reporting import create_views, drop_views

revision: str = "0013_reporting_lead_columns"
down_revision: str | None = "0012_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = """
    SELECT id AS lead_id, email, account_id, hubspot_id, salesforce_id,
           match AS account_match, country, region, form_type, is_consultant, status,
           owner_id, owner_role, rule AS routing_rule, reason AS routing_reason,
           queue, priority, created_at, routed_at, first_touch_at,
           first_status_change_at, converted_at
      FROM router.leads
"""
# The columns come after the ones readers already have: a report that names its columns
# reads the view as before.
AFTER = """
    SELECT id AS lead_id, email, account_id, hubspot_id, salesforce_id,
           match AS account_match, country, region, form_type, is_consultant, status,
           owner_id, owner_role, rule AS routing_rule, reason AS routing_reason,
           queue, priority, created_at, routed_at, first_touch_at,
           first_status_change_at, converted_at,
           state, employees, segment, policy_version, territory,
           company, match_score AS company_match_score
      FROM router.leads
"""


def upgrade() -> None:
    drop_views(["leads"])
    create_views({"leads": AFTER})


def downgrade() -> None:
    drop_views(["leads"])
    create_views({"leads": BEFORE})

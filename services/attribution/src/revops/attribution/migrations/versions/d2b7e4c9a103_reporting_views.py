"""the reporting views of lead sources, opportunity sources and campaign influence
(docs/REPORTING.md)

Revision ID: d2b7e4c9a103
Revises: c1a0e7b5d202
Create Date: 2026-12-03 15:30:00
"""

from collections.abc import Sequence

from revops.events.reporting import create_views, drop_views

revision: str = "d2b7e4c9a103"
down_revision: str | None = "c1a0e7b5d202"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The eight models' credit columns, one row per model (a long table suits BI tools).
MODELS = (
    "first_touch",
    "lead_creation",
    "u_shaped",
    "w_shaped",
    "full_path",
    "linear",
    "last_touch",
    "time_decay",
)
_CREDITS = ", ".join(f"('{m}', i.credit_{m})" for m in MODELS)

VIEWS = {
    "lead_sources": """
        SELECT person_id, email, person_type, account_id, first_seen_at, crm_created_at,
               lead_source, first_touchpoint, first_touch_at, original_source,
               original_source_detail, first_url, first_referrer
          FROM attribution.people
    """,
    "opportunity_sources": """
        SELECT opportunity_id, account_id, name, stage, amount, close_date, owner_id,
               is_closed, is_won, crm_created_at AS created_at, qualified_at,
               converted_lead_id, converted_at, opportunity_source, lead_source,
               source_rule, reason AS source_reason, first_touchpoint, primary_campaign_id
          FROM attribution.opportunities
         WHERE is_deleted IS NOT TRUE
    """,
    "campaign_influence": f"""
        SELECT i.opportunity_id, i.campaign_id, i.touch_id, i.person_id, i.touched_at,
               i.positions, c.model, c.credit,
               round(c.credit * o.amount, 2) AS credited_amount
          FROM attribution.opportunity_influence i
          JOIN attribution.opportunities o USING (opportunity_id)
         CROSS JOIN LATERAL (VALUES {_CREDITS}) AS c(model, credit)
         WHERE o.is_deleted IS NOT TRUE
    """,
}


def upgrade() -> None:
    create_views(VIEWS)


def downgrade() -> None:
    drop_views(list(VIEWS))

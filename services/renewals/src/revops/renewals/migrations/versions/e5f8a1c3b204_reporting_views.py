"""the reporting views of the pipeline, its stage history, renewals and the weekly
forecast snapshots' totals (docs/REPORTING.md)

Revision ID: e5f8a1c3b204
Revises: c1a0e7b5d203
Create Date: 2026-12-03 15:30:00
"""

from collections.abc import Sequence

from revops.events.reporting import create_views, drop_views

revision: str = "e5f8a1c3b204"
down_revision: str | None = "c1a0e7b5d203"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    "pipeline": """
        SELECT opportunity_id, name, account_id, owner_id, stage, stage_order,
               stage_kind, amount, forecast_category, close_date, contract_end_date,
               pipeline, opportunity_type, is_renewal, created_at, nbm_at, qualified_at,
               closed_at, last_at AS last_changed_at
          FROM renewals.opportunities
    """,
    "opportunity_stage_history": """
        SELECT opportunity_id, at AS valid_from, valid_to, stage, stage_order,
               stage_kind, amount, forecast_category, owner_id, account_id, closed_at,
               is_renewal, event_id
          FROM renewals.opportunity_history
    """,
    "renewals": """
        SELECT renewal_id, source_opportunity_id, crm_opportunity_id, account_id,
               owner_id, name, amount, close_date, pipeline, opportunity_type, status,
               created_at, ended_at, updated_at
          FROM renewals.renewals
    """,
    "forecast_snapshots": """
        SELECT s.id AS snapshot_id, s.scheduled_at, s.as_of, s.taken_at,
               c.key AS forecast_category,
               (c.value ->> 'count')::integer AS opportunities,
               (c.value ->> 'amount')::numeric(18, 2) AS amount
          FROM renewals.snapshots s
         CROSS JOIN LATERAL jsonb_each(s.contents -> 'total' -> 'open_by_category') AS c
    """,
}


def upgrade() -> None:
    create_views(VIEWS)


def downgrade() -> None:
    drop_views(list(VIEWS))

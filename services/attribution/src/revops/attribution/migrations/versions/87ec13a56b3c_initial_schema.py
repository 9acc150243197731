"""initial schema: people, their CRM ids, touches and conversions; opportunities and
their influencing touches

Revision ID: 87ec13a56b3c
Revises:
Create Date: 2026-11-22 07:16:20.268260
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "87ec13a56b3c"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversions",
        sa.Column("lead_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("contact_id", sa.Text(), nullable=True),
        sa.Column("opportunity_id", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("person_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("lead_id"),
        schema="attribution",
    )
    op.create_index(
        "conversions_unresolved",
        "conversions",
        ["lead_id"],
        unique=False,
        schema="attribution",
        postgresql_where=sa.text("person_id IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id"),
        schema="attribution",
    )
    op.create_table(
        "opportunities",
        sa.Column("opportunity_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("stage", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=True),
        sa.Column("is_won", sa.Boolean(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=True),
        sa.Column("given_lead_source", sa.Text(), nullable=True),
        sa.Column("crm_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qualified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("converted_lead_id", sa.Text(), nullable=True),
        sa.Column("converted_person_id", sa.Text(), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("field_times", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("opportunity_source", sa.Text(), nullable=True),
        sa.Column("lead_source", sa.Text(), nullable=True),
        sa.Column("source_rule", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source_person_id", sa.Text(), nullable=True),
        sa.Column("first_touchpoint", sa.Text(), nullable=True),
        sa.Column("primary_campaign_id", sa.Text(), nullable=True),
        sa.Column("primary_touch_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("opportunity_id"),
        schema="attribution",
    )
    op.create_index(
        "opportunities_account", "opportunities", ["account_id"], unique=False, schema="attribution"
    )
    op.create_index(
        "opportunities_converted_person",
        "opportunities",
        ["converted_person_id"],
        unique=False,
        schema="attribution",
    )
    op.create_table(
        "opportunity_influence",
        sa.Column("opportunity_id", sa.Text(), nullable=False),
        sa.Column("touch_id", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("positions", sa.Text(), nullable=False),
        sa.Column("credit_first_touch", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_lead_creation", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_u_shaped", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_w_shaped", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_full_path", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_linear", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_last_touch", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.Column("credit_time_decay", sa.Numeric(precision=9, scale=6), nullable=False),
        sa.PrimaryKeyConstraint("opportunity_id", "touch_id"),
        schema="attribution",
    )
    op.create_index(
        "opportunity_influence_campaign",
        "opportunity_influence",
        ["campaign_id"],
        unique=False,
        schema="attribution",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("destination", sa.String(length=50), server_default="kafka", nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        schema="attribution",
    )
    op.create_table(
        "people",
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("person_type", sa.Text(), nullable=True),
        sa.Column("account_id", sa.Text(), nullable=True),
        sa.Column("crm_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Text(), nullable=True),
        sa.Column("created_by_role", sa.Text(), nullable=True),
        sa.Column("crm_lead_source", sa.Text(), nullable=True),
        sa.Column("offline_detail", sa.Text(), nullable=True),
        sa.Column("field_times", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("lead_source", sa.Text(), nullable=True),
        sa.Column("first_touchpoint", sa.Text(), nullable=True),
        sa.Column("first_touch_id", sa.Text(), nullable=True),
        sa.Column("first_touch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("original_source", sa.Text(), nullable=True),
        sa.Column("original_source_detail", sa.Text(), nullable=True),
        sa.Column("first_url", sa.Text(), nullable=True),
        sa.Column("first_referrer", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("person_id"),
        schema="attribution",
    )
    op.create_index("people_account", "people", ["account_id"], unique=False, schema="attribution")
    op.create_table(
        "person_refs",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("object_id"),
        schema="attribution",
    )
    op.create_table(
        "touches",
        sa.Column("touch_id", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("form_id", sa.Text(), nullable=True),
        sa.Column("form_type", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("referrer", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("touch_id"),
        schema="attribution",
    )
    op.create_index(
        "touches_person",
        "touches",
        ["person_id", "occurred_at"],
        unique=False,
        schema="attribution",
    )


def downgrade() -> None:
    op.drop_index("touches_person", table_name="touches", schema="attribution")
    op.drop_table("touches", schema="attribution")
    op.drop_table("person_refs", schema="attribution")
    op.drop_index("people_account", table_name="people", schema="attribution")
    op.drop_table("people", schema="attribution")
    op.drop_table("outbox", schema="attribution")
    op.drop_index(
        "opportunity_influence_campaign", table_name="opportunity_influence", schema="attribution"
    )
    op.drop_table("opportunity_influence", schema="attribution")
    op.drop_index(
        "opportunities_converted_person", table_name="opportunities", schema="attribution"
    )
    op.drop_index("opportunities_account", table_name="opportunities", schema="attribution")
    op.drop_table("opportunities", schema="attribution")
    op.drop_table("inbox", schema="attribution")
    op.drop_index(
        "conversions_unresolved",
        table_name="conversions",
        schema="attribution",
        postgresql_where=sa.text("person_id IS NULL"),
    )
    op.drop_table("conversions", schema="attribution")

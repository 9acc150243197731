"""Renewals' tables, all in schema ``renewals``.

``opportunity_history`` is the stage history: one row per change, holding both what the
event said (``change``) and the opportunity as it stood from then on (the folded
columns) and when the next version begins, so any figure as of a past moment is one
filter away. A late event is
folded in where it belongs and the opportunity's later rows are recomputed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from revops.events.db import service_metadata

SCHEMA = "renewals"
metadata = service_metadata(SCHEMA)

MONEY = Numeric(18, 2)

opportunity_history = Table(
    "opportunity_history",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("opportunity_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),  # the event's occurred_at
    # When the next version begins (NULL: the latest), so "as of T" is a plain filter,
    # at <= T < valid_to, with no sort over the history.
    Column("valid_to", DateTime(timezone=True)),
    Column("change", JSONB, nullable=False),  # the fields the event sent, as sent
    # The opportunity from ``at`` on (folded from every change up to this one).
    Column("stage", Text),
    Column("stage_order", Integer),
    Column("stage_kind", Text),  # open / won / lost
    Column("amount", MONEY),
    Column("forecast_category", Text),
    Column("owner_id", Text),
    Column("account_id", Text),
    Column("closed_at", DateTime(timezone=True)),
    Column("is_renewal", Boolean, nullable=False, server_default="false"),
    Index("opportunity_history_as_of", "opportunity_id", "at", "event_id"),
)

opportunities = Table(
    "opportunities",
    metadata,
    # The latest version, and the milestones the whole history gives.
    Column("opportunity_id", Text, primary_key=True),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("last_event_id", Text, nullable=False),
    Column("name", Text),
    Column("account_id", Text),
    Column("owner_id", Text),
    Column("stage", Text),
    Column("stage_order", Integer),
    Column("stage_kind", Text),
    Column("amount", MONEY),
    Column("forecast_category", Text),
    Column("close_date", Date),
    Column("contract_end_date", Date),
    Column("pipeline", Text),
    Column("opportunity_type", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("nbm_at", DateTime(timezone=True)),
    Column("qualified_at", DateTime(timezone=True)),
    Column("is_renewal", Boolean, nullable=False, server_default="false"),
    Index("opportunities_owner", "owner_id"),
    # The opportunity list: by close date, and by status, forecast category or account
    # in that order.
    Index("opportunities_close", "close_date", "opportunity_id"),
    Index("opportunities_status", "stage_kind", "close_date", "opportunity_id"),
    Index("opportunities_forecast", "forecast_category", "close_date", "opportunity_id"),
    Index("opportunities_account", "account_id", "close_date", "opportunity_id"),
)

renewals = Table(
    "renewals",
    metadata,
    Column("renewal_id", Text, primary_key=True),  # derived from the source opportunity id
    # The unique key that makes a second renewal of one win impossible.
    Column("source_opportunity_id", Text, nullable=False, unique=True),
    Column("account_id", Text),
    Column("owner_id", Text),
    Column("amount", MONEY),
    Column("close_date", Date, nullable=False),
    Column("pipeline", Text, nullable=False),
    Column("opportunity_type", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),  # open / cancelled / won / lost
    Column("created_at", DateTime(timezone=True), nullable=False),  # the win's occurred_at
    Column("ended_at", DateTime(timezone=True)),  # cancelled, won or lost
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    # The renewal's own id in the CRM once created there (its later events are its own).
    Column("crm_opportunity_id", Text, unique=True),
    Column("crm_synced_at", DateTime(timezone=True)),
    Index("renewals_due", "close_date"),
    Index("renewals_owner", "owner_id"),
    # The renewal list: a status's renewals by close date (open ones by default).
    Index("renewals_status", "status", "close_date", "renewal_id"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Text, primary_key=True),
    # One snapshot per scheduled time, whatever the number of instances and restarts.
    Column("scheduled_at", DateTime(timezone=True), unique=True),  # NULL: taken on request
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("seconds", Numeric(10, 3), nullable=False),
    Column("opportunities", Integer, nullable=False),
    Column("contents", JSONB, nullable=False),
    Index("snapshots_as_of", "as_of"),
)

account_changes = Table(
    "account_changes",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("users", BigInteger),
    Column("plan", Text),
    Column("iacv", MONEY),
    Index("account_changes_account", "account_id", "at"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("users", BigInteger),
    Column("plan", Text),
    Column("iacv", MONEY),
    Column("tier", Text),
    Column("tier_since", DateTime(timezone=True)),
    Column("last_at", DateTime(timezone=True), nullable=False),
    # The account list by tier.
    Index("accounts_tier", "tier", "account_id"),
)

tier_history = Table(
    "tier_history",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("tier_from", Text),
    Column("tier_to", Text, nullable=False),
)

onboardings = Table(
    "onboardings",
    metadata,
    Column("id", Text, primary_key=True),  # derived from the account and the change
    Column("account_id", Text, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("tier_from", Text),
    Column("tier_to", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="Not started"),
    Index("onboardings_account", "account_id"),
    # The onboarding list, the newest first.
    Index("onboardings_opened", "opened_at", "id"),
)

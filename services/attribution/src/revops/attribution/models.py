"""Attribution's tables, all in schema ``attribution``.

Two kinds of columns: facts taken from events (what happened and when), and decisions
computed from them by the domain (marked below). Decisions are always recomputed from
the stored facts, never patched, so a late event and a replay give the same answer.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, DateTime, Index, Numeric, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from revops.attribution.domain.influence import AttributionModel
from revops.events.db import service_metadata

SCHEMA = "attribution"
metadata = service_metadata(SCHEMA)

CREDIT = Numeric(9, 6)


def credit_column(model: AttributionModel) -> str:
    return f"credit_{model.value}"


people = Table(
    "people",
    metadata,
    # The email (lower case); a CRM record without one is keyed "ref:<crm id>".
    Column("person_id", Text, primary_key=True),
    Column("email", Text),
    Column("person_type", Text),  # lead / contact
    Column("account_id", Text),
    Column("crm_created_at", DateTime(timezone=True)),  # earliest CRM record's creation
    Column("first_seen_at", DateTime(timezone=True), nullable=False),  # earliest event
    Column("created_by_id", Text),
    Column("created_by_role", Text),  # SDR / AE when a rep created the record
    Column("crm_lead_source", Text),
    Column("offline_detail", Text),
    Column("field_times", JSONB),  # field -> [occurred_at, event id] of its value
    # Decisions.
    Column("lead_source", Text),
    Column("first_touchpoint", Text),
    Column("first_touch_id", Text),
    Column("first_touch_at", DateTime(timezone=True)),
    Column("original_source", Text),
    Column("original_source_detail", Text),
    Column("first_url", Text),
    Column("first_referrer", Text),
    Index("people_account", "account_id"),
)

person_refs = Table(
    "person_refs",
    metadata,
    # A CRM id (Salesforce Lead/Contact id, HubSpot contact id) -> the person.
    Column("object_id", Text, primary_key=True),
    Column("system", Text, nullable=False),
    Column("object_type", Text, nullable=False),
    Column("person_id", Text, nullable=False),
)

touches = Table(
    "touches",
    metadata,
    # Gated interactions: forms (campaign memberships) and product sign-ups.
    Column("touch_id", Text, primary_key=True),  # the event id
    Column("person_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # form / cloud_signup / private_install
    Column("form_id", Text),
    Column("form_type", Text),
    Column("campaign_id", Text),
    Column("page_url", Text),
    Column("referrer", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    # The first page the person was seen on and its referrer, when the sender knows them
    # (HubSpot's first page seen): original source comes from these before page_url.
    Column("first_page_url", Text),
    Column("first_referrer", Text),
    Index("touches_person", "person_id", "occurred_at"),
    # The campaign list, grouped by campaign from this index alone.
    Index(
        "touches_campaign",
        "campaign_id",
        "person_id",
        "occurred_at",
        postgresql_where=text("campaign_id IS NOT NULL"),
    ),
)

conversions = Table(
    "conversions",
    metadata,
    # Lead conversions as they came. The person is resolved from the email or, when the
    # conversion names only CRM ids, from person_refs -- possibly later, when the lead's
    # own event arrives after its conversion (different topics: no order between them).
    Column("lead_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("contact_id", Text),
    Column("opportunity_id", Text),
    Column("email", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("person_id", Text),
)
Index(
    "conversions_unresolved",
    conversions.c.lead_id,
    postgresql_where=conversions.c.person_id.is_(None),
)

opportunities = Table(
    "opportunities",
    metadata,
    Column("opportunity_id", Text, primary_key=True),
    Column("account_id", Text),
    Column("name", Text),
    Column("stage", Text),
    Column("amount", Numeric),
    Column("close_date", Date),
    Column("owner_id", Text),
    Column("is_closed", Boolean),
    Column("is_won", Boolean),
    Column("is_deleted", Boolean),  # NULL: not deleted
    Column("given_lead_source", Text),
    Column("crm_created_at", DateTime(timezone=True)),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("qualified_at", DateTime(timezone=True)),
    Column("converted_lead_id", Text),
    Column("converted_person_id", Text),
    Column("converted_at", DateTime(timezone=True)),
    Column("field_times", JSONB),  # field -> [occurred_at, event id] of its value
    # Decisions.
    Column("opportunity_source", Text),
    Column("lead_source", Text),
    Column("source_rule", Text),
    Column("reason", Text),
    Column("source_person_id", Text),
    Column("first_touchpoint", Text),  # the converted lead's
    Column("primary_campaign_id", Text),
    Column("primary_touch_id", Text),
    Index("opportunities_account", "account_id"),
    Index("opportunities_converted_person", "converted_person_id"),
)

opportunity_influence = Table(
    "opportunity_influence",
    metadata,
    # Decisions: the touches that influence an opportunity and their credit per model.
    Column("opportunity_id", Text, primary_key=True),
    Column("touch_id", Text, primary_key=True),
    Column("person_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("touched_at", DateTime(timezone=True), nullable=False),
    Column("positions", Text, nullable=False),  # e.g. "FT,LC"
    *(Column(credit_column(model), CREDIT, nullable=False) for model in AttributionModel),
    Index("opportunity_influence_campaign", "campaign_id"),
)

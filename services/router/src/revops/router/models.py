"""The router's tables, all in schema ``router``, built from events and the reps API."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from revops.events.db import applied_offsets_table, service_metadata

SCHEMA = "router"
metadata = service_metadata(SCHEMA)


def _id(name: str = "id", **kw: object) -> Column[str]:
    return Column(name, String(64), **kw)  # type: ignore[arg-type]


def _at(name: str, nullable: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


reps = Table(
    "reps",
    metadata,
    _id(primary_key=True),  # the CRM user id, so events can name the rep
    Column("name", String(200), nullable=False, server_default=""),
    Column("email", String(254)),
    Column("role", String(3), nullable=False),
    Column("region", String(4)),
    Column("certified", Boolean, nullable=False, server_default="false"),
    Column("consultant", Boolean, nullable=False, server_default="false"),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("paused", Boolean, nullable=False, server_default="false"),
    Column("out_of_office", Boolean, nullable=False, server_default="false"),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("daily_cap", Integer),
    _id("paired_sdr_id"),
    # The rep's user in each CRM: owner write-back sets these, never our own rep id.
    _id("salesforce_user_id"),
    _id("hubspot_owner_id"),
    # When the rep is on shift (the rep event's ``working_hours``); null: around the clock.
    Column("working_hours", JSON),
    # Rotation order: the order reps joined, so a rep's place never moves.
    Column("position", BigInteger, Identity(), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per rotation, locked (FOR UPDATE) while a turn is taken: ``cursor`` is the next
# slot (turns are numbered per queue) and ``rotation`` the pointer over the roster.
queues = Table(
    "queues",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("role", String(3), nullable=False),
    Column("region", String(4), nullable=False),
    Column("cursor", BigInteger, nullable=False, server_default="0"),
    # The rotation's pointer beside the slot counter (domain.rotation.RotationState).
    Column("rotation", JSON, nullable=False, server_default="{}"),
)

# Every turn ever taken: (queue, slot) is the primary key, so no turn can be used twice.
queue_turns = Table(
    "queue_turns",
    metadata,
    Column("queue", String(50), primary_key=True),
    Column("slot", BigInteger, primary_key=True),
    _id("rep_id", nullable=False),
    _id("subject_id", nullable=False),  # the lead (or the conversion) the turn went to
    Column("day", Date, nullable=False),
    # The daily counts (caps, GET /queues) are read by day first.
    Index("ix_queue_turns_day", "day", "queue"),
)

accounts = Table(
    "accounts",
    metadata,
    _id(primary_key=True),
    Column("name", String(255)),
    _id("owner_id"),
    _id("sdr_id"),  # the account's SDR: the owner's pair, kept while nobody owns it
    Column("region", String(4)),
    Column("country", String(100)),
    _at("updated_at"),
    # Each field's winning change (domain.merge): an older change arriving late keeps
    # only what nobody changed since. "domains" stands for the account_domains rows.
    Column("field_times", JSON, nullable=False, server_default="{}"),
)

# Each account's name as company names are compared (``domain.company_names``), and the
# word a lead's company must share with it to be scored at all.
account_names = Table(
    "account_names",
    metadata,
    _id("account_id", primary_key=True),
    Column("name_key", String(255), nullable=False),
    Column("block", String(255), nullable=False, index=True),
)

account_domains = Table(
    "account_domains",
    metadata,
    Column("domain", String(255), primary_key=True),
    _id("account_id", primary_key=True),
)

contacts = Table(
    "contacts",
    metadata,
    _id(primary_key=True),
    Column("email", String(254), index=True),
    _id("account_id"),
)

opportunities = Table(
    "opportunities",
    metadata,
    _id(primary_key=True),
    _id("account_id", index=True),
    _id("owner_id"),
    Column("is_closed", Boolean, nullable=False, server_default="false"),
    Column("is_won", Boolean),
    _at("created_at"),
    Column("close_date", Date),
    Column("field_times", JSON, nullable=False, server_default="{}"),
)

touches = Table(
    "touches",
    metadata,
    _id("activity_id", primary_key=True),
    _id("rep_id"),
    Column("kind", String(20), nullable=False),
    _at("at", nullable=False),
    _id("lead_ref", index=True),  # the CRM's lead id
    _id("contact_id", index=True),
    _id("account_id", index=True),
    Column("email", String(254), index=True),
)

leads = Table(
    "leads",
    metadata,
    _id(primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    _id("hubspot_id", index=True),
    _id("salesforce_id", index=True),
    _id("account_id", index=True),
    Column("match", String(20), nullable=False),
    Column("country", String(100)),
    Column("region", String(4)),
    Column("form_type", String(50)),
    Column("is_consultant", Boolean, nullable=False, server_default="false"),
    Column("status", String(50)),
    _id("owner_id"),
    Column("owner_role", String(3)),
    Column("rule", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("queue", String(50)),
    Column("turn", BigInteger),
    Column("priority", String(10), nullable=False),
    _id("review_with_sdr_id"),
    _at("created_at", nullable=False),
    Column("routed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _at("first_touch_at"),
    _at("first_status_change_at"),
    _at("converted_at"),
    Column("source_event_id", String(200), nullable=False),
    # What territories match on besides country and form type, as the lead gave it.
    Column("state", String(100)),
    Column("employees", Integer),
    Column("segment", String(100)),
    # The routing policy version the latest decision was made under, and its territory.
    Column("policy_version", Integer),
    Column("territory", String(100)),
    # The company the lead gave, and the score of the account name it matched (the email's
    # domain matched none; match "company_name").
    Column("company", String(255)),
    Column("match_score", Float),
    # Lists and the console page leads by arrival, oldest or newest first: a page of 100
    # reads 100 index entries instead of sorting the whole table.
    Index("ix_leads_created_at", "created_at", "id"),
    # The lists' filters, each in arrival order: a page of one queue, owner or rule reads
    # its 100 entries, and its total is counted from the index alone.
    Index("ix_leads_queue", "queue", "created_at", "id"),
    Index("ix_leads_owner", "owner_id", "created_at", "id"),
    Index("ix_leads_rule", "rule", "created_at", "id"),
    # The SLA breaches' total (sla_api.count_breaches) without reading every lead: the
    # leads whose clock still runs, by arrival, ...
    Index(
        "ix_leads_never_touched",
        "created_at",
        postgresql_where=text("first_touch_at IS NULL AND converted_at IS NULL"),
    ),
    Index(
        "ix_leads_status_never_changed",
        "created_at",
        postgresql_where=text("first_status_change_at IS NULL AND converted_at IS NULL"),
    ),
    # ... and the conversions, whose clock-stop depends on the moment asked about.
    Index(
        "ix_leads_converted_at",
        "converted_at",
        postgresql_where=text("converted_at IS NOT NULL"),
    ),
)

# ... and the leads whose clock stopped, by how long it ran (range-read past the limit;
# the expression's columns included so the count reads the index alone).
Index(
    "ix_leads_first_touch_took",
    func.least(leads.c.first_touch_at, leads.c.converted_at) - leads.c.created_at,
    postgresql_include=["first_touch_at", "created_at", "converted_at"],
)
Index(
    "ix_leads_first_status_change_took",
    func.least(leads.c.first_status_change_at, leads.c.converted_at) - leads.c.created_at,
    postgresql_include=["first_status_change_at", "created_at", "converted_at"],
)

# Leads whose owner came by a later decision (a waiting lead routed, an admin's, the SLA
# escalation): since when the owner has it (their first-touch clock for the escalation)
# and the reps the escalation took it from. A lead without a row is its first owner's
# since it arrived.
owner_clocks = Table(
    "owner_clocks",
    metadata,
    _id("lead_id", primary_key=True),
    _at("owner_since", nullable=False),
    Column("escalated_from", ARRAY(String(64)), nullable=False, server_default="{}"),
)

# A second form or sign-up of a known email: a touchpoint, not a second lead.
touchpoints = Table(
    "touchpoints",
    metadata,
    Column("event_id", String(200), primary_key=True),
    _id("lead_id", nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("form_type", String(50)),
    _at("at", nullable=False),
)


def _moves(name: str) -> Table:
    """Leads moved to another SDR by an account's owner change, one row per move."""
    return Table(
        name,
        metadata,
        _id("lead_id", primary_key=True),
        Column("transferred_at", DateTime(timezone=True), primary_key=True),
        _id("account_id", nullable=False),
        _id("from_sdr_id"),
        _id("to_sdr_id", nullable=False),
    )


lead_moves = _moves("lead_moves")

conversions = Table(
    "conversions",
    metadata,
    _id("lead_id", primary_key=True),
    _id("account_id", nullable=False),
    _id("opportunity_id"),
    _id("ae_id"),
    Column("rule", String(30), nullable=False),
    Column("reason", Text, nullable=False),
    _id("sao_sdr_id"),
    _at("converted_at", nullable=False),
)

# Decisions read back from the routing topic when the schema is rebuilt: a round-robin
# turn depends on arrival order, so a replay re-applies the recorded decision.
recorded_routes = Table(
    "recorded_routes",
    metadata,
    _id("lead_id", primary_key=True),
    Column("decision", JSON, nullable=False),
)

# Assign AE of each conversion (``lead.ae_assigned``), read back on a rebuild: an AE round
# robin depends on the order conversions arrived in, so the recorded one is re-applied.
# By the conversion event: on a rebuild its lead may not be routed yet when it is replayed.
recorded_conversions = Table(
    "recorded_conversions",
    metadata,
    Column("conversion_id", String(200), primary_key=True),
    Column("assignment", JSON, nullable=False),
)

# Account owner changes (``account.transferred``) read back on a rebuild, by the change
# that made them: which leads a transfer moves depends on when the change was applied
# relative to the leads' routing, so the recorded moves are re-applied.
recorded_transfers = Table(
    "recorded_transfers",
    metadata,
    Column("change_id", String(200), primary_key=True),
    _id("account_id", nullable=False, index=True),
    _at("transferred_at", nullable=False),
    Column("transfer", JSON, nullable=False),
)

# The moves of the recorded transfers, by lead: a lead routed on a rebuild takes its
# recorded moves at once, whether its account's change was replayed before or after it.
recorded_moves = _moves("recorded_moves")

# How far the router has applied each partition of the topics it reads: written in the
# batch's transaction, so every instance can tell what all of them have applied.
applied_offsets = applied_offsets_table(metadata)

# New leads held until the CRM state they may depend on has been applied: the end
# offsets of the state partitions when they were read (``watermark``), or the bound.
held_leads = Table(
    "held_leads",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("person", JSON, nullable=False),
    Column("watermark", JSON, nullable=False),
    Column("held_since", DateTime(timezone=True), nullable=False),
    Index("ix_held_leads_since", "held_since"),
    Index("ix_held_leads_email", "email", "held_since", "event_id"),
)

# The outbox's index on pending rows now comes with the shared service_metadata.
outbox = metadata.tables["router.outbox"]
# The owner write-backs among the outbox's events (context.HUBSPOT_OWNER and
# SALESFORCE_OWNER), written out so the list's query and its index say the same: a
# parameter in the query would not let Postgres use a partial index.
WRITEBACK_DESTINATIONS = ("hubspot_owner", "salesforce_owner")
WRITEBACKS = text("destination IN ('hubspot_owner', 'salesforce_owner')")
# The write-back list reads only the write-backs, not every event waiting or sent.
Index(
    "outbox_writebacks",
    outbox.c.id,
    postgresql_include=["sent_at", "failed_at"],
    postgresql_where=WRITEBACKS,
)

# Every routing policy applied, numbered in the roster topic's order (version 0 is the
# policy of the configuration, never stored): the highest version is the one in force.
routing_policies = Table(
    "routing_policies",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("event_id", String(200), nullable=False, unique=True),
    Column("document", Text, nullable=False),
    Column("changed_by", String(200)),
    _at("changed_at", nullable=False),
)

"""A batch applied whole against the same events applied one at a time (the runner's
fallback, each a run of one): the same events end in the same rows either way, in a few
statements per batch, and a redelivered batch changes nothing. Real Postgres, no Kafka
(the handlers are called as the runner calls them, in one transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, Literal

import pytest
from pydantic import SecretStr
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from revops.events.catalogue import (
    AccountChangedEvent,
    ActivityLoggedEvent,
    Event,
    OpportunityChangedEvent,
    PersonChanged,
    PersonChangedEvent,
    SourceRef,
    make_event,
)
from revops.events.codec import encode_event
from revops.events.db import Database
from revops.events.testing import (
    account_changed,
    activity_logged,
    fresh_schema,
    opportunity_changed,
    service_settings,
    unique_prefix,
)
from revops.router import models as m
from revops.router.consumer import make_batch_handler, make_event_handler
from revops.router.context import RouterContext
from revops.router.main import SPEC, build_runtime
from revops.router.rotations import ALL_QUEUES
from revops.router.settings import RouterSettings

from .router_events import (
    T0,
    account,
    converted,
    form,
    opportunity,
    touch,
)

pytestmark = pytest.mark.infra

REPS = [
    {"id": "SA", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "SB", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "SC", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "AX", "role": "AE", "region": "AMER", "certified": True, "paired_sdr_id": "SA"},
    {"id": "AY", "role": "AE", "region": "AMER", "certified": True, "paired_sdr_id": "SB"},
    {"id": "AZ", "role": "AE", "region": "AMER", "certified": True, "paired_sdr_id": "SB"},
]

# Set by the database, not by the events: left out of the comparison.
_UNCOMPARED = {
    "leads": {"routed_at"},
    "reps": {"created_at", "updated_at"},
    "outbox": {"id", "created_at", "next_attempt_at"},
}


@pytest.fixture(scope="module")
def settings(infra: None) -> RouterSettings:
    s = service_settings(
        RouterSettings,
        "router",
        unique_prefix(),
        # Write-backs on, so the owner write-backs queued are compared too.
        hubspot_access_token=SecretStr("hs"),
        salesforce_instance_url="http://crm.invalid",
        salesforce_access_token=SecretStr("sf"),
    )
    assert isinstance(s, RouterSettings)
    return s


@pytest.fixture
async def database(settings: RouterSettings) -> AsyncIterator[Database]:
    database = Database(settings.resolved_database_url(), "router", pool_size=1)
    yield database
    await database.dispose()


async def fresh(settings: RouterSettings, database: Database) -> None:
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with database.transaction() as session:
        await session.execute(
            pg_insert(m.queues).on_conflict_do_nothing(),
            [{"name": n, "role": r, "region": g} for n, r, g in ALL_QUEUES],
        )
        rows = [{"name": "", "paired_sdr_id": None, **r} for r in REPS]
        await session.execute(m.reps.insert(), rows)


async def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every router table but the inbox, in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with database.transaction() as session:
        for table in m.metadata.sorted_tables:
            if table.name == "inbox":
                continue
            skip = _UNCOMPARED.get(table.name, set())
            columns = [c for c in table.c if c.name not in skip]
            rows = await session.execute(select(*columns))
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


async def both_paths(
    settings: RouterSettings,
    database: Database,
    before: Sequence[Event],
    events: Sequence[Event],
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """The state after ``events`` applied one at a time, and applied as one batch (each
    on a fresh schema where ``before`` was applied first)."""
    one_at_a_time = make_event_handler(RouterContext.of(settings))
    batch = make_batch_handler(RouterContext.of(settings))
    states = []
    for apply in ("one", "batch"):
        await fresh(settings, database)
        async with database.transaction() as session:
            await batch(session, list(before))
        async with database.transaction() as session:
            if apply == "one":
                for e in events:
                    await one_at_a_time(session, e)
            else:
                await batch(session, list(events))
        states.append(await snapshot(database))
    return states[0], states[1]


def person(
    n: int,
    *,
    kind: str = "lead",
    change: str = "updated",
    email: str | None = None,
    system: str = "salesforce",
    object_id: str,
    status: str | None = None,
    at_min: int = 0,
    **extra: Any,
) -> PersonChangedEvent:
    object_type = {"hubspot": "contact", "salesforce": "Lead" if kind == "lead" else "Contact"}
    return make_event(
        PersonChangedEvent,
        id=f"person-{n}",
        source="hubspot" if system == "hubspot" else "salesforce",
        occurred_at=T0 + timedelta(minutes=at_min),
        payload=PersonChanged(
            person_type=kind,
            change=change,
            email=email,
            status=status,
            source_ref=SourceRef(
                system=system, object_type=object_type[system], object_id=object_id
            ),
            **extra,
        ),
    )


def contact_touch(rep: str, contact_id: str) -> ActivityLoggedEvent:
    return activity_logged(
        T0 - timedelta(days=2),
        kind="call",
        id=f"touch-{contact_id}",
        rep_id=rep,
        contact_id=contact_id,
    )


def account_change(
    n: int,
    account_id: str,
    at_min: int,
    *,
    change: Literal["created", "updated", "deleted"] = "updated",
    **fields: Any,
) -> AccountChangedEvent:
    at = T0 + timedelta(minutes=at_min)
    return account_changed(account_id, at, change=change, id=f"account-{n}", **fields)


def opportunity_change(
    n: int,
    opp_id: str,
    *,
    change: Literal["created", "updated", "deleted"] = "updated",
    **fields: Any,
) -> OpportunityChangedEvent:
    # No creation time unless given: these are the batch's changes as the CRM sends them.
    fields = {"created_at": None, **fields}
    at = T0 + timedelta(minutes=n)
    return opportunity_changed(opp_id, at, change=change, id=f"opportunity-{n}", **fields)


BEFORE: list[Event] = [
    account("001A", "Acme", ["acme.com"], T0 - timedelta(days=60), owner="AX"),
    account("001I", "Initech", ["initech.com"], T0 - timedelta(days=60), owner="AY"),
    form("ann@acme.com", T0 - timedelta(days=1)),
    form("bob@acme.com", T0 - timedelta(days=1)),
    form("hub@initech.com", T0 - timedelta(days=1), hubspot_id="hs-hub"),
    form("cy@initech.com", T0 - timedelta(days=1)),
]


def assert_same(
    one: dict[str, list[tuple[Any, ...]]], batch: dict[str, list[tuple[Any, ...]]]
) -> None:
    assert one.keys() == batch.keys()
    for table in one:
        assert batch[table] == one[table], table


async def test_changes_of_one_person_in_a_batch_end_as_one_at_a_time(settings, database):
    events: list[Event] = [
        # A HubSpot contact, then a CRM lead with its email: routing sees the contact.
        person(0, kind="contact", system="hubspot", object_id="hs-pre", email="pre@x.com"),
        # A Salesforce lead changing three times: its id attached once, the last status
        # kept, the first status change the earliest non-"new" one after its creation.
        person(1, email="ann@acme.com", object_id="00QANN", status="Working", at_min=30),
        person(2, email="ann@acme.com", object_id="00QANN", status="Nurture", at_min=10),
        person(3, object_id="00QANN", status="New", at_min=40),  # found by its id alone
        person(4, email="ann@acme.com", object_id="00QANN", change="deleted", status="Dead"),
        # A HubSpot contact that is a lead: created without an email, then given one
        # (the contact row merges both), its lead status counted on the lead.
        person(5, kind="contact", system="hubspot", object_id="hs-hub", at_min=5),
        person(6, kind="contact", system="hubspot", object_id="hs-hub", status="OPEN", at_min=6),
        person(
            7,
            kind="contact",
            system="hubspot",
            object_id="hs-hub",
            email="hub@initech.com",
            account_id="001I",
            status="IN_PROGRESS",
            at_min=7,
        ),
        # A HubSpot contact found by email: the lead gets its HubSpot id (and a write-back).
        person(8, kind="contact", system="hubspot", object_id="hs-bob", email="bob@acme.com"),
        # Salesforce contacts: rows only.
        person(9, kind="contact", object_id="003C", email="cy@initech.com", account_id="001I"),
        person(10, kind="contact", object_id="003C", account_id="001A"),
        # Leads created in the CRM: routed (one claimed by its creator, two round robin,
        # each seeing the turns before it), then changed again in the same batch.
        person(
            11,
            change="created",
            email="new@bigcorp.com",
            object_id="00QNEW",
            created_by_id="SA",
            country="US",
            at_min=1,
        ),
        person(12, object_id="00QNEW", status="Working", at_min=50),
        person(13, change="created", email="rr1@rr.com", object_id="00QRR1", country="US"),
        person(14, change="created", email="rr2@rr.com", object_id="00QRR2", country="US"),
        # A contact change after a lead was created in the batch (the next segment): it
        # sees the new lead.
        person(
            15,
            kind="contact",
            system="hubspot",
            object_id="hs-rr1",
            email="rr1@rr.com",
            status="CONNECTED",
            at_min=60,
        ),
        person(16, object_id="00QRR2", email="rr2@rr.com", status="Unqualified", at_min=70),
        person(19, change="created", email="pre@x.com", object_id="00QPRE", country="US"),
        # Nothing to find, nothing to create.
        person(17, object_id="00QNONE", status="Working"),
        person(18, change="merged", email="gone@acme.com", object_id="00QGONE"),
    ]
    before: list[Event] = [
        *BEFORE,
        # SDR touches on two HubSpot contacts: a lead with the contact's email, created
        # after the contact has it, is SC's by the recent-touch rule.
        contact_touch("SC", "hs-pre"),
        contact_touch("SC", "hs-rr1"),
    ]
    one, batch = await both_paths(settings, database, before, events)
    assert_same(one, batch)
    leads = {row[1]: row for row in batch["leads"]}  # by email
    assert {"new@bigcorp.com", "rr1@rr.com", "rr2@rr.com"} <= leads.keys()
    rule_and_owner = {email: (row[13], row[11]) for email, row in leads.items()}
    assert rule_and_owner["pre@x.com"] == ("recent_touch", "SC")
    # rr1's contact got its email only after the lead was created (the next segment).
    assert rule_and_owner["rr1@rr.com"][0] == "round_robin"
    assert len(batch["queue_turns"]) == len(one["queue_turns"]) >= 2
    assert ("hs-hub", "hub@initech.com", "001I") in batch["contacts"]
    assert any(row[1] == "hubspot_owner" for row in batch["outbox"])


async def test_changes_of_one_account_in_a_batch_end_as_one_at_a_time(settings, database):
    events: list[Event] = [
        account_change(1, "001A", 10, name="Acme Corp"),
        # AX (SDR SA) -> AY (SDR SB): Acme's open leads move to SB, both SDRs told.
        account_change(2, "001A", 20, owner_id="AY"),
        # Older than the owner change before it: its owner is not taken, its domains
        # are (nobody changed them since), until change 4 sets them again.
        account_change(3, "001A", 15, owner_id="AX", domains=["stale.com"]),
        # AY -> AZ share their SDR: nothing moves; then back to AX: the leads move again.
        account_change(4, "001A", 30, owner_id="AZ", domains=["acme.com", "www.Acme.io"]),
        account_change(5, "001A", 40, owner_id="AX", country="Germany"),
        account_change(6, "001A", 45, change="deleted", owner_id="AY"),
        account_change(7, "001A", 50, website="https://acme.co.uk"),
        # Created in the batch, then transferred in the same batch.
        account_change(8, "001N", 5, change="created", name="Newco", owner_id="AX", region="emea"),
        account_change(9, "001N", 25, owner_id="AY", domains=[]),
        # Without an owner: keeps its SDR; stale after.
        account_change(10, "001I", 5, owner_id=None, name="Initech"),
        account_change(11, "001I", 1, name="Old name"),
    ]
    one, batch = await both_paths(settings, database, BEFORE, events)
    assert_same(one, batch)
    moves = batch["lead_moves"]
    assert {row[4] for row in moves} == {"SB", "SA"}  # moved to SB, then back to SA
    # Acme twice (AY and AZ share their SDR: no news), Newco once (no open lead to move).
    assert sum(1 for row in batch["outbox"] if b"account_transfer" in row[4]) == 3


def by_id(rows: list[tuple[Any, ...]], table: Any) -> dict[str, dict[str, Any]]:
    names = [c.name for c in table.c]
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}


async def test_an_older_change_arriving_late_is_merged_field_by_field(settings, database):
    events: list[Event] = [
        account_change(1, "001A", 20, owner_id="AY"),
        # Older: its owner lost to change 1, its name and domains changed by nobody since.
        account_change(2, "001A", 10, owner_id="AX", name="Acme Holdings", domains=["ah.com"]),
        opportunity_change(3, "006A", is_closed=True, owner_id="AY"),
        # Older than change 3 (an opportunity change's time is its number of minutes).
        opportunity_change(1, "006A", is_closed=False, close_date=T0.date()),
    ]
    before = [*BEFORE, opportunity("006A", "001A", "AX", T0 - timedelta(days=5))]
    one, batch = await both_paths(settings, database, before, events)
    assert_same(one, batch)
    acme = by_id(batch["accounts"], m.accounts)["001A"]
    assert (acme["owner_id"], acme["name"]) == ("AY", "Acme Holdings")
    assert ("ah.com", "001A") in batch["account_domains"]
    assert ("acme.com", "001A") not in batch["account_domains"]
    assert {row[4] for row in batch["lead_moves"]} == {"SB"}  # moved once, never back
    opp = by_id(batch["opportunities"], m.opportunities)["006A"]
    assert (opp["is_closed"], opp["owner_id"], opp["close_date"]) == (True, "AY", T0.date())


async def test_changes_of_one_opportunity_in_a_batch_end_as_one_at_a_time(settings, database):
    before: list[Event] = [
        *BEFORE,
        opportunity("006A", "001A", "AX", T0 - timedelta(days=5)),
        opportunity("006B", "001A", "AX", T0 - timedelta(days=5), closed=True),
        opportunity("006C", "001A", "AX", T0 - timedelta(days=5)),
    ]
    events: list[Event] = [
        opportunity_change(1, "006A", owner_id="AY"),
        opportunity_change(2, "006A", is_closed=True, is_won=False),
        # Deleted, then created again with fewer fields: the others are back to defaults.
        opportunity_change(3, "006B", account_id="001I", owner_id="AZ"),
        opportunity_change(4, "006B", change="deleted"),
        opportunity_change(5, "006B", account_id="001I"),
        opportunity_change(6, "006C", account_id="001A", is_closed=True),
        opportunity_change(7, "006C", change="deleted"),
        opportunity_change(8, "006D"),  # nothing carried: a bare row
        opportunity_change(9, "006A", close_date=T0.date()),
    ]
    one, batch = await both_paths(settings, database, before, events)
    assert_same(one, batch)
    opportunities = {row[0]: row for row in batch["opportunities"]}
    assert set(opportunities) == {"006A", "006B", "006D"}
    assert opportunities["006A"][2:4] == ("AY", True)
    assert opportunities["006B"][2:4] == (None, False)


async def test_a_mixed_batch_ends_as_one_at_a_time(settings, database):
    """Runs of every kind, interleaved, with a conversion between them."""
    events: list[Event] = [
        form("dee@acme.com", T0),
        touch("SC", T0 + timedelta(minutes=5), email="dee@acme.com"),
        person(1, email="dee@acme.com", object_id="00QDEE", status="Working", at_min=9),
        account_change(2, "001A", 30, owner_id="AY"),
        opportunity_change(3, "006Z", change="created", account_id="001A", owner_id="AY"),
        converted("00QDEE", "dee@acme.com", "001A", "006Z", T0 + timedelta(days=2)),
        form("dee@acme.com", T0 + timedelta(hours=1), hubspot_id="hs-dee"),
        form("eve@initech.com", T0 + timedelta(hours=1)),
        person(4, kind="contact", system="hubspot", object_id="hs-eve", email="eve@initech.com"),
        account_change(5, "001A", 40, owner_id="AX"),
    ]
    one, batch = await both_paths(settings, database, BEFORE, events)
    assert_same(one, batch)
    assert len(batch["conversions"]) == 1 and len(batch["touchpoints"]) == 1


async def test_a_batch_of_changes_takes_a_few_statements(settings, database):
    """A few statements per run whatever its length (one at a time: several per event)."""
    events: list[Event] = [
        person(i, email=f"p{i}@acme.com", object_id=f"00QP{i}", status="Working")
        for i in range(100)
    ]
    events += [
        person(100 + i, kind="contact", system="hubspot", object_id=f"hs-{i}", email="x@y.com")
        for i in range(100)
    ]
    events += [account_change(i, f"001X{i % 20}", i, name=f"X {i}") for i in range(100)]
    events += [opportunity_change(i, f"006X{i % 30}", owner_id="AX") for i in range(100)]
    await fresh(settings, database)
    statements: list[str] = []
    handle_batch = make_batch_handler(RouterContext.of(settings))

    def count(*args: Any) -> None:
        statements.append(args[2])

    sync_engine = database.engine.sync_engine
    sa_event.listen(sync_engine, "before_cursor_execute", count)
    try:
        async with database.transaction() as session:
            await handle_batch(session, events)
    finally:
        sa_event.remove(sync_engine, "before_cursor_execute", count)
    # Queues locked, reps; person run: leads, contacts, leads again (the routing of 100
    # CRM-created leads: a dozen), accounts: load, store; opportunities: one upsert.
    assert len(statements) <= 30, statements
    async with database.transaction() as session:
        assert len((await session.execute(select(m.leads.c.id))).all()) == 100


async def test_a_redelivered_batch_changes_nothing(settings, database):
    await fresh(settings, database)
    runtime = build_runtime(settings)
    try:
        records = [
            SimpleNamespace(
                topic=e.topic.name(settings.topic_prefix),
                partition=0,
                offset=i,
                key=e.key.encode(),
                value=encode_event(e),
                headers=[],
            )
            for i, e in enumerate(
                [
                    *BEFORE,
                    person(1, email="ann@acme.com", object_id="00QANN", status="Working"),
                    person(2, kind="contact", system="hubspot", object_id="hs-1", email="a@b.co"),
                    person(3, change="created", email="crm@new.com", object_id="00QC"),
                    account_change(4, "001A", 10, owner_id="AY"),
                    opportunity_change(5, "006A", change="created", account_id="001A"),
                    opportunity_change(6, "006A", change="deleted"),
                ]
            )
        ]
        assert await runtime.consumer.apply_batch(records) == []
        first = await snapshot(database)
        assert await runtime.consumer.apply_batch(records) == []
        assert await snapshot(database) == first
        assert len(first["leads"]) == 5 and len(first["lead_moves"]) == 2
    finally:
        await runtime.database.dispose()

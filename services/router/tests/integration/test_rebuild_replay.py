"""A rebuild from the topics (`revops reset router --follow`) after a history that mixes
every kind of decision gives back the same roster, leads, turns, daily counts, rotation
positions, AE assignments and transfers: a lead's latest decision is re-applied, and the
turns its earlier decisions took (a round-robin turn a manual assignment came after, a
re-routed lead's first turn, a waiting lead's routing) are restored from the journal. And
it sends the CRMs (a local server speaking Salesforce's API) no owner update again, and
no notification again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events.catalogue import (
    NotificationRequestedEvent,
    PersonChanged,
    PersonChangedEvent,
    make_event,
)
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import reset_router, router_settings, running_router
from .fake_crm import TOKEN, FakeCrm, running_fake_crm
from .rep_helpers import create_reps
from .router_events import T0, account, converted, routing_events, sf
from .test_conversion_replay import snapshot

pytestmark = pytest.mark.infra

ARRIVED = T0 + timedelta(days=60)
SDR = {"role": "SDR", "region": "AMER", "certified": True}
AE = {"role": "AE", "region": "AMER", "certified": True}
# Rotation order: the order of creation (D is outbound: a place in the rotation, no turns).
REPS: list[dict[str, Any]] = [
    {"id": "A", **SDR},
    {"id": "B", **SDR},
    {"id": "C", **SDR},
    {"id": "D", "role": "SDR", "region": "AMER"},
    {"id": "AE1", **AE, "paired_sdr_id": "A"},
    {"id": "AE2", **AE, "paired_sdr_id": "D"},
]
OUTBOX = m.metadata.tables["router.outbox"]


def crm_user(rep_id: str) -> str:
    return f"005{rep_id}"


def sf_lead(n: int, email: str, at: datetime, country: str = "US") -> PersonChangedEvent:
    """A Salesforce lead (its owner is written back to Salesforce)."""
    return make_event(
        PersonChangedEvent,
        id=f"sf-rebuild-{n}",
        source="salesforce",
        occurred_at=at,
        payload=PersonChanged(
            person_type="lead",
            change="created",
            email=email,
            status="New",
            country=country,
            source_ref=sf("Lead", sf_id(n)),
            created_at=at,
        ),
    )


def sf_id(n: int) -> str:
    return f"00QREBUILD{n}"


def email(n: int) -> str:
    return f"buyer{n}@rebuild-co{n}.example"


async def lead_of(client: httpx.AsyncClient, address: str, **expected: Any) -> dict[str, Any]:
    """The lead of ``address`` once routed (and showing ``expected``)."""

    async def routed() -> dict[str, Any]:
        r = await client.get("/leads", params={"email": address})
        assert r.status_code == 200, r.text
        leads = r.json()["items"]
        assert len(leads) == 1, leads
        lead = leads[0]
        assert {k: lead[k] for k in expected} == expected, lead
        return dict(lead)

    return await eventually(routed, timeout_s=60, interval_s=0.1)


async def arrive(
    client: httpx.AsyncClient, topics: KafkaSettings, n: int, **expected: Any
) -> dict[str, Any]:
    """Lead ``n`` sent alone and routed (one at a time: a rotation's order is the order
    the router sees them in)."""
    await publish(topics, [sf_lead(n, email(n), ARRIVED + timedelta(minutes=n))])
    return await lead_of(client, email(n), **expected)


async def assign(client: httpx.AsyncClient, lead: dict[str, Any], owner: str) -> None:
    r = await client.post(
        f"/leads/{lead['id']}/assign", json={"owner_id": owner, "reason": "knows them"}
    )
    assert (r.status_code, r.json()["owner_id"], r.json()["rule"]) == (200, owner, "manual")


async def history(client: httpx.AsyncClient, topics: KafkaSettings) -> None:
    """Round-robin turns, a manual assignment after one, a roster change, a re-route, a
    waiting lead routed once a rep came and then assigned, an account's lead and its
    transfer, a conversion's Assign AE, and a last round-robin lead assigned by hand."""
    await create_reps(client, [{**r, "salesforce_user_id": crm_user(r["id"])} for r in REPS])
    await publish(topics, [account("ACC1", "Acme", ["acme.example"], ARRIVED, owner="AE1")])
    one = await arrive(client, topics, 1, owner_id="A", rule="round_robin", turn=0)
    two = await arrive(client, topics, 2, owner_id="B", turn=1)
    three = await arrive(client, topics, 3, owner_id="C", turn=2)
    await assign(client, three, "A")  # C's turn stays taken
    await create_reps(client, [{"id": "E", **SDR, "salesforce_user_id": crm_user("E")}])
    await arrive(client, topics, 4, owner_id="E", turn=3)  # after C: D is passed, then E
    r = await client.post(f"/leads/{one['id']}/reroute")
    assert (r.status_code, r.json()["owner_id"], r.json()["turn"]) == (200, "A", 4)

    # Nobody in EMEA: the lead waits, is routed when F arrives, then given to A.
    await publish(topics, [sf_lead(5, email(5), ARRIVED + timedelta(minutes=5), "DE")])
    waiting = await lead_of(client, email(5), owner_id=None, queue="unassigned")
    emea = {"id": "F", "role": "SDR", "region": "EMEA", "certified": True}
    await create_reps(client, [{**emea, "salesforce_user_id": crm_user("F")}])
    await lead_of(client, email(5), owner_id="F", queue="inbound-EMEA", turn=0)
    await assign(client, waiting, "A")

    # The account's lead takes the next turn, then moves with the account from A's AE to
    # D's: the account's open leads go to the new AE's SDR.
    at = ARRIVED + timedelta(minutes=6)
    await publish(topics, [sf_lead(6, "ana@acme.example", at)])
    await lead_of(client, "ana@acme.example", owner_id="B", turn=5)
    moved_at = at + timedelta(minutes=1)
    await publish(topics, [account("ACC1", "Acme", ["acme.example"], moved_at, owner="AE2")])
    await lead_of(client, "ana@acme.example", owner_id="D")

    # Two converts: Assign AE takes the AE rotation's first turn.
    converted_at = ARRIVED + timedelta(minutes=8)
    await publish(topics, [converted(sf_id(2), two["email"], "ACC2", "006REBUILD2", converted_at)])

    async def ae_assigned() -> None:
        r = await client.get(f"/leads/{two['id']}")
        assert r.json()["converted_at"] is not None, r.json()

    await eventually(ae_assigned, timeout_s=60, interval_s=0.1)

    # The last round-robin turn, C's, and then the lead by hand to A: the rotation stays
    # after C, so the next lead is E's.
    seven = await arrive(client, topics, 7, owner_id="C", turn=6)
    await assign(client, seven, "A")


async def state(settings: RouterSettings) -> dict[str, Any]:
    """Every row a rebuild must give back: ``snapshot``'s (leads, conversions, turns,
    moves, rotations), the roster and the owners' clocks."""
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        reps = [dict(r._mapping) for r in await conn.execute(select(m.reps).order_by(m.reps.c.id))]
        clocks = sorted(map(tuple, await conn.execute(select(m.owner_clocks))))
    await engine.dispose()
    return {**await snapshot(settings), "reps": reps, "owner_clocks": clocks}


async def all_sent(settings: RouterSettings) -> None:
    """Every outbox row published to Kafka or delivered to its CRM."""
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        pending = list(await conn.execute(select(OUTBOX).where(OUTBOX.c.sent_at.is_(None))))
    await engine.dispose()
    assert not pending, f"{len(pending)} outbox rows not sent yet"


@asynccontextmanager
async def rebuilt_router(settings: RouterSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The schema emptied and the group rewound, as `revops reset router` does, then the
    router started again (it rebuilds from the topics)."""
    await reset_router(settings)
    async with running_router(settings) as client:
        yield client


def settings_of(topics: KafkaSettings, crm: FakeCrm) -> RouterSettings:
    # No SLA look by the clock: these leads are months old.
    return router_settings(
        topics, sla_check_s=0, salesforce_instance_url=crm.url, salesforce_access_token=TOKEN
    )


async def test_a_rebuild_gives_back_every_turn_and_the_same_next_rep(
    own_topics: KafkaSettings,
) -> None:
    async with running_fake_crm() as crm:
        settings = settings_of(own_topics, crm)
        await fresh_schema(SPEC, settings.resolved_database_url())
        async with running_router(settings) as client:
            await history(client, own_topics)
            await eventually(lambda: all_sent(settings), timeout_s=60, interval_s=0.1)
        before = await state(settings)
        amer = [t for t in before["queue_turns"] if t[0] == "inbound-AMER"]
        assert [(slot, rep) for _, slot, rep, *_ in amer] == [
            (0, "A"),
            (1, "B"),
            (2, "C"),
            (3, "E"),
            (4, "A"),
            (5, "B"),
            (6, "C"),
        ]
        assert [t[:3] for t in before["queue_turns"] if t[0] != "inbound-AMER"] == [
            ("ae-AMER", 0, "AE1"),
            ("inbound-EMEA", 0, "F"),
        ]
        assert len(before["lead_moves"]) == 1 and len(before["conversions"]) == 1

        async with rebuilt_router(settings) as client:

            async def same_again() -> None:
                assert await state(settings) == before

            await eventually(same_again, timeout_s=60, interval_s=0.2)
            # The next lead takes the turn it would have taken without the reset.
            await arrive(client, own_topics, 8, owner_id="E", rule="round_robin", turn=7)


async def notifications(topics: KafkaSettings) -> list[tuple[str, str]]:
    """The notifications on the routing topic: (kind, id) of each, sorted."""
    return sorted(
        (e.payload.kind, e.id)
        for e in await routing_events(topics)
        if isinstance(e, NotificationRequestedEvent)
    )


async def crm_rows(settings: RouterSettings) -> list[Any]:
    """The outbox rows of calls to the CRMs (the others go to Kafka)."""
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        rows = list(await conn.execute(select(OUTBOX).where(OUTBOX.c.topic == "")))
    await engine.dispose()
    return rows


async def test_a_rebuild_sends_no_owner_update_or_notification_again(
    own_topics: KafkaSettings,
) -> None:
    async with running_fake_crm() as crm:
        settings = settings_of(own_topics, crm)
        await fresh_schema(SPEC, settings.resolved_database_url())
        async with running_router(settings) as client:
            await history(client, own_topics)
            await eventually(lambda: all_sent(settings), timeout_s=60, interval_s=0.1)
        before = await state(settings)
        # Every owner the history gave went to Salesforce, in its users' ids.
        assert crm.salesforce_owner == {
            sf_id(1): "005A",  # re-routed to A
            sf_id(2): "005B",
            sf_id(3): "005A",  # by hand
            sf_id(4): "005E",
            sf_id(5): "005A",  # F's once F came, then A's by hand
            sf_id(6): "005D",  # moved with its account
            sf_id(7): "005A",  # by hand
        }
        assert crm.salesforce_opportunity_owner == {"006REBUILD2": "005AE1"}
        calls = list(crm.calls)
        told = await notifications(own_topics)
        assert {kind for kind, _ in told} == {"account_transfer", "ae_assigned"}

        async with rebuilt_router(settings):

            async def same_again() -> None:
                assert await state(settings) == before

            await eventually(same_again, timeout_s=60, interval_s=0.2)
            # The rebuild's outbox rows are in the transactions that rebuilt the rows
            # above: none of them is a CRM call, and its events are all published.
            assert await crm_rows(settings) == []
            await eventually(lambda: all_sent(settings), timeout_s=60, interval_s=0.1)
        assert crm.calls == calls
        assert await notifications(own_topics) == told

"""SLA escalation in the running router, time driven through the SLA look with an explicit
``now``: leads nobody touched go to the next rep of the rotation twice, then to the
queue's manager; each move is a ``lead.routed``, a notice and a CRM write-back; a touch
stops it; a reset rebuilds the same owners, rotation and counts, and looking again as of
the same instants changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from revops.events.service import ServiceRuntime
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    eventually,
    fresh_schema,
    publish,
    running_app,
)
from revops.router import models as m
from revops.router.escalation import escalate_overdue_leads
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings

from .conftest import ADMIN, reset_router, router_settings
from .fake_crm import TOKEN, FakeCrm, running_fake_crm
from .rep_helpers import create_reps
from .router_events import T0, account, touch
from .test_writeback import sf_lead

pytestmark = pytest.mark.infra

QUEUE = "inbound-AMER"
POLICY = f"""territories:
  - name: americas
    region: AMER
    match: {{countries: [US]}}
escalation:
  {QUEUE}:
    reassign: 2
    manager: M
"""
REPS = [
    {"id": r, "role": "SDR", "region": "AMER", "certified": True, "salesforce_user_id": f"005{r}"}
    for r in "ABC"
] + [{"id": "M", "role": "SDR", "region": "AMER", "salesforce_user_id": "005M"}]
STEP = timedelta(minutes=5, seconds=1)  # just past the five-minute first touch
ARRIVED = T0 + timedelta(days=10)
SECOND = timedelta(seconds=1)
LEADS = [
    ("one@a-corp.com", "00QONE"),
    ("two@b-corp.com", "00QTWO"),
    ("three@c-corp.com", "00QTHREE"),
]


@asynccontextmanager
async def router(
    settings: RouterSettings,
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    app = build_app(settings)
    async with running_app(app, base_url="http://router", headers=ADMIN) as client:
        yield client, app.state.runtime


async def look(runtime: ServiceRuntime, now: datetime) -> list[tuple[str, str, str]]:
    """The SLA look as of ``now``: (lead, from, to) of each escalation made."""
    async with runtime.database.transaction() as session:
        made = await escalate_overdue_leads(session, runtime.context, now)
    runtime.relay.wake()
    return [(e.lead_id, e.from_rep_id, e.to_rep_id) for e in made]


async def owners(client: httpx.AsyncClient) -> dict[str, tuple[Any, ...]]:
    r = await client.get("/leads", params={"limit": 100})
    assert r.status_code == 200, r.text
    return {
        lead["email"]: (lead["owner_id"], lead["rule"], lead["queue"], lead["turn"])
        for lead in r.json()["items"]
    }


async def outbox(runtime: ServiceRuntime) -> list[dict[str, Any]]:
    async with runtime.database.transaction() as session:
        rows = await session.execute(select(m.metadata.tables["router.outbox"]))
        return [dict(r._mapping) for r in rows]


def settings_of(topics: KafkaSettings, crm: FakeCrm) -> RouterSettings:
    # sla_check_s 0: no look by the clock; the test looks as of the instants it chooses.
    return router_settings(
        topics,
        sla_check_s=0,
        salesforce_instance_url=crm.url,
        salesforce_access_token=TOKEN,
    )


async def test_untouched_leads_go_to_the_next_rep_twice_then_to_the_manager(
    own_topics: KafkaSettings,
) -> None:
    async with running_fake_crm() as crm:
        settings = settings_of(own_topics, crm)
        await fresh_schema(SPEC, settings.resolved_database_url())
        async with router(settings) as (client, runtime):
            await create_reps(client, REPS)
            r = await client.put("/routing-policy", json={"document": POLICY, "changed_by": "ops"})
            assert r.status_code == 202, r.text
            # One at a time: leads on different partitions may be routed in any order.
            for n, (email, sf_id) in enumerate(LEADS):
                await publish(own_topics, [sf_lead(email, sf_id, ARRIVED + n * SECOND)])

                async def routed(count: int = n + 1) -> dict[str, tuple[Any, ...]]:
                    found = await owners(client)
                    assert len(found) == count
                    return found

                first = await eventually(routed, timeout_s=60, interval_s=0.1)
            assert first == {
                "one@a-corp.com": ("A", "round_robin", QUEUE, 0),
                "two@b-corp.com": ("B", "round_robin", QUEUE, 1),
                "three@c-corp.com": ("C", "round_robin", QUEUE, 2),
            }
            # Three's owner calls in time: the escalation leaves it alone for good.
            await publish(
                own_topics, [touch("C", ARRIVED + timedelta(minutes=3), email="three@c-corp.com")]
            )

            async def touched() -> None:
                async with runtime.database.transaction() as session:
                    at = await session.scalar(
                        select(m.leads.c.first_touch_at).where(
                            m.leads.c.email == "three@c-corp.com"
                        )
                    )
                assert at is not None

            await eventually(touched, timeout_s=30, interval_s=0.1)

            r = await client.get("/leads", params={"limit": 100})
            ids = {lead["email"]: lead["id"] for lead in r.json()["items"]}
            one, two = ids["one@a-corp.com"], ids["two@b-corp.com"]

            counted = (_escalations("reassigned"), _escalations("manager"))
            # Exactly five minutes after each arrival is in time.
            assert await look(runtime, ARRIVED + timedelta(minutes=5)) == []
            first_step = ARRIVED + STEP + timedelta(seconds=1)
            # The rotation's pointer is after C: A would be next, but A lost one, so B
            # takes it; C is next after B for two, which B lost. A loser is passed over
            # and keeps their place: nobody gets the turn they lost back.
            assert await look(runtime, first_step) == [(one, "A", "B"), (two, "B", "C")]
            assert await look(runtime, first_step) == []  # the new owners' clocks start now
            second_step = first_step + STEP
            assert await look(runtime, second_step) == [(one, "B", "C"), (two, "C", "A")]
            third_step = second_step + STEP
            assert await look(runtime, third_step) == [(one, "C", "M"), (two, "A", "M")]
            assert await look(runtime, third_step + timedelta(days=7)) == []
            assert _escalations("reassigned") - counted[0] == 4
            assert _escalations("manager") - counted[1] == 2

            expected = {
                "one@a-corp.com": ("M", "sla_escalated", QUEUE, None),
                "two@b-corp.com": ("M", "sla_escalated", QUEUE, None),
                "three@c-corp.com": ("C", "round_robin", QUEUE, 2),
            }
            assert await owners(client) == expected
            lead = (await client.get(f"/leads/{one}")).json()
            assert lead["reason"] == (
                f"SLA escalation: C left the 5-minute first touch untouched; "
                f"escalated to {QUEUE}'s manager"
            )

            rows = await outbox(runtime)
            notices = [orjson.loads(r["value"]) for r in rows if b"sla_escalation" in r["value"]]
            told = sorted(tuple(n["payload"]["recipients"]) for n in notices)
            assert told == sorted(
                [("A", "B"), ("B", "C"), ("B", "C"), ("C", "A"), ("C", "M"), ("A", "M")]
            )
            routed_events = [
                orjson.loads(r["value"])["payload"]
                for r in rows
                if r["topic"].endswith("routing") and b'"decided_at"' in r["value"]
            ]
            escalated = [p for p in routed_events if p.get("escalated_from")]
            assert sorted(tuple(p["escalated_from"]) for p in escalated) == sorted(
                [("A",), ("B",), ("A", "B"), ("B", "C"), ("A", "B", "C"), ("B", "C", "A")]
            )

            async def written_back() -> None:
                # The last owner in Salesforce: the manager's user, never our rep id.
                assert crm.salesforce_owner.get("00QONE") == "005M"
                assert crm.salesforce_owner.get("00QTWO") == "005M"

            await eventually(written_back, timeout_s=30, interval_s=0.1)
            await eventually(lambda: _published(runtime), timeout_s=30, interval_s=0.1)
            rotation = await _rotation(runtime)

        # Reset: the schema emptied and the group rewound, as `revops reset router` does.
        await reset_router(settings)
        async with router(settings) as (client, runtime):

            async def rebuilt() -> None:
                assert await owners(client) == expected

            await eventually(rebuilt, timeout_s=60, interval_s=0.2)
            assert await _rotation(runtime) == rotation
            # The counts and clocks came back too: no look escalates anything again.
            for at in (first_step, second_step, third_step, third_step + timedelta(days=7)):
                assert await look(runtime, at) == []


async def _published(runtime: ServiceRuntime) -> None:
    pending = [r for r in await outbox(runtime) if r["sent_at"] is None]
    assert not pending, f"{len(pending)} outbox rows not yet published"


async def _rotation(runtime: ServiceRuntime) -> tuple[Any, ...]:
    async with runtime.database.transaction() as session:
        row = (
            await session.execute(
                select(m.queues.c.cursor, m.queues.c.rotation).where(m.queues.c.name == QUEUE)
            )
        ).one()
    return tuple(row)


def _escalations(kind: str) -> float:
    """The escalations counted so far (this process's counter, shared by its tests)."""
    return (
        REGISTRY.get_sample_value("revops_sla_escalations_total", {"queue": QUEUE, "kind": kind})
        or 0.0
    )


async def test_a_lead_a_transfer_moved_to_the_accounts_sdr_is_not_escalated(
    own_topics: KafkaSettings,
) -> None:
    async with running_fake_crm() as crm:
        settings = settings_of(own_topics, crm)
        await fresh_schema(SPEC, settings.resolved_database_url())
        async with router(settings) as (client, runtime):
            ae = {"role": "AE", "region": "AMER", "certified": True}
            await create_reps(
                client,
                [
                    *REPS,
                    {"id": "D", "role": "SDR", "region": "AMER"},  # outbound: no rotation
                    {"id": "AE1", **ae, "paired_sdr_id": "A"},
                    {"id": "AE2", **ae, "paired_sdr_id": "D"},
                ],
            )
            r = await client.put("/routing-policy", json={"document": POLICY})
            assert r.status_code == 202, r.text
            await publish(
                own_topics, [account("ACC1", "Acme", ["acme.com"], ARRIVED - SECOND, owner="AE1")]
            )

            async def known() -> None:
                r = await client.get("/accounts/ACC1/domains")
                assert r.status_code == 200, r.text

            await eventually(known, timeout_s=30, interval_s=0.1)
            await publish(own_topics, [sf_lead("ana@acme.com", "00QANA", ARRIVED)])
            await eventually(
                lambda: _owner_is(client, "ana@acme.com", "A"), timeout_s=60, interval_s=0.1
            )
            moved_at = ARRIVED + timedelta(minutes=2)
            await publish(
                own_topics, [account("ACC1", "Acme", ["acme.com"], moved_at, owner="AE2")]
            )
            await eventually(
                lambda: _owner_is(client, "ana@acme.com", "D"), timeout_s=60, interval_s=0.1
            )
            # Untouched long past the target, but D has it by the account, not the rotation.
            assert await look(runtime, ARRIVED + timedelta(hours=1)) == []


async def _owner_is(client: httpx.AsyncClient, email: str, owner: str) -> None:
    r = await client.get("/leads", params={"email": email})
    leads = r.json()["items"]
    assert len(leads) == 1 and leads[0]["owner_id"] == owner, leads

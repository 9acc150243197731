"""A rebuild keeps each lead's latest decision: a lead routed once someone could take it,
or assigned by hand, comes back as it was last decided, not as first decided."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events.catalogue import LeadRoutedEvent
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import reset_router, router_settings, running_router
from .rep_helpers import create_reps
from .router_events import T0, form, routing_events
from .test_roster_replay import wait_for_leads

pytestmark = pytest.mark.infra

COLUMNS = ("email", "owner_id", "rule", "queue", "turn", "reason")


async def stored_leads(settings: RouterSettings) -> dict[str, tuple[Any, ...]]:
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        rows = await conn.execute(select(*(m.leads.c[c] for c in COLUMNS)))
        leads = {r.email: tuple(r)[1:] for r in rows}
    await engine.dispose()
    return leads


async def test_a_rebuild_keeps_each_leads_latest_decision(kafka_settings: KafkaSettings):
    settings = router_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    emails = ["first@replay-a.example", "second@replay-b.example", "third@replay-c.example"]
    async with running_router(settings) as client:
        # Nobody in AMER: all three wait; then a rep comes and takes them.
        await publish(
            kafka_settings,
            [form(e, T0 + timedelta(minutes=i), country="US") for i, e in enumerate(emails)],
        )
        await wait_for_leads(client, 3)
        await create_reps(
            client, [{"id": "RA", "role": "SDR", "region": "AMER", "certified": True}]
        )
        await create_reps(
            client, [{"id": "RB", "role": "SDR", "region": "AMER", "certified": True}]
        )
        r = await client.get("/leads", params={"owner_id": "RA"})
        assert len(r.json()["items"]) == 3
        # The second by hand to RB, the third re-routed (the next turn: RB's).
        lead_ids = {lead["email"]: lead["id"] for lead in r.json()["items"]}
        r = await client.post(
            f"/leads/{lead_ids[emails[1]]}/assign", json={"owner_id": "RB", "reason": "pair"}
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/leads/{lead_ids[emails[2]]}/reroute")
        assert (r.status_code, r.json()["owner_id"]) == (200, "RB")

        async def all_published() -> None:
            routed = [
                e for e in await routing_events(kafka_settings) if isinstance(e, LeadRoutedEvent)
            ]
            assert len(routed) == 3 + 3 + 2  # first, after waiting, assigned / re-routed

        await eventually(all_published, timeout_s=30, interval_s=0.5)
    before = await stored_leads(settings)
    assert [before[e][:2] for e in emails] == [
        ("RA", "round_robin"),
        ("RB", "manual"),
        ("RB", "round_robin"),
    ]

    # Stopped; the schema emptied and the group rewound, as `revops reset router` does.
    await reset_router(settings)
    async with running_router(settings) as client:
        await wait_for_leads(client, 3)

        async def same_again() -> None:
            assert await stored_leads(settings) == before

        await eventually(same_again, timeout_s=30, interval_s=0.2)

"""A reset brings the roster back: the reps are rebuilt from the roster topic, every field
and the rotation order as they were, and the leads routed with them come back the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events import admin
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import router_settings, running_router
from .rep_helpers import create_reps, patch_rep
from .router_events import T0, form, routing_events

pytestmark = pytest.mark.infra

LEADS = 12


async def stored(
    settings: RouterSettings,
) -> tuple[list[dict[str, Any]], dict[str, tuple[Any, ...]]]:
    """Every rep (all columns but the position, in position order) and every lead's owner."""
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        reps = [
            {k: v for k, v in row._mapping.items() if k != "position"}
            for row in await conn.execute(select(m.reps).order_by(m.reps.c.position))
        ]
        columns = [m.leads.c[c] for c in ("email", "owner_id", "rule", "queue", "turn")]
        leads = {r.email: tuple(r)[1:] for r in await conn.execute(select(*columns))}
    await engine.dispose()
    return reps, leads


async def wait_for_leads(client: httpx.AsyncClient, count: int) -> None:
    async def routed() -> None:
        r = await client.get("/leads", params={"limit": 500})
        assert len(r.json()["items"]) == count

    await eventually(routed, timeout_s=60, interval_s=0.2)


async def test_a_reset_rebuilds_the_same_roster_from_the_topic(kafka_settings: KafkaSettings):
    settings = router_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    day = T0 + timedelta(days=30)
    async with running_router(settings) as client:
        # Created in an order that is not the ids' order, changed after others joined.
        await create_reps(
            client,
            [
                {"id": "R-C", "role": "SDR", "region": "AMER", "certified": True},
                {
                    "id": "R-A",
                    "name": "Ann",
                    "email": "ann@example.com",
                    "role": "SDR",
                    "region": "AMER",
                    "certified": True,
                    "hubspot_owner_id": "9001",
                },
                {"id": "R-AE", "role": "AE", "region": "AMER", "paired_sdr_id": "R-A"},
            ],
        )
        await patch_rep(client, "R-C", weight=2, salesforce_user_id="0055g00000CCC")
        await create_reps(
            client,
            [
                {"id": "R-B", "role": "SDR", "region": "AMER", "certified": True, "daily_cap": 50},
                {"id": "R-E", "role": "SDR", "region": "EMEA", "consultant": True},
            ],
        )
        await patch_rep(client, "R-A", out_of_office=True, name="Ann Lee")
        await patch_rep(client, "R-A", out_of_office=False, daily_cap=None)
        await patch_rep(client, "R-E", active=False, hubspot_owner_id="9005")
        await publish(
            kafka_settings,
            [form(f"lead{i}@company{i}.com", day + timedelta(minutes=i)) for i in range(LEADS)],
        )
        await wait_for_leads(client, LEADS)

        async def all_published() -> None:
            routed = [e for e in await routing_events(kafka_settings) if e.type == "lead.routed"]
            assert len(routed) == LEADS

        await eventually(all_published, timeout_s=30, interval_s=0.5)
    reps_before, leads_before = await stored(settings)
    assert [r["id"] for r in reps_before] == ["R-C", "R-A", "R-AE", "R-B", "R-E"]
    assert {owner for owner, *_ in leads_before.values()} == {"R-A", "R-B", "R-C"}

    # Stopped; the schema emptied and the group rewound, as `revops reset router` does.
    await fresh_schema(SPEC, settings.resolved_database_url())
    assert (await stored(settings)) == ([], {})
    await admin.reset_group_to_start(
        settings.kafka_bootstrap_servers,
        f"{settings.topic_prefix}{settings.service_name}",
        [t.name(settings.topic_prefix) for t in SPEC.topics],
    )
    async with running_router(settings) as client:
        await wait_for_leads(client, LEADS)

        async def roster_back() -> None:
            r = await client.get("/reps")
            assert len(r.json()["items"]) == len(reps_before)
            assert r.json()["items"][-1]["active"] is False  # R-E's last change

        await eventually(roster_back)
    reps_after, leads_after = await stored(settings)
    # Every field (the creation and change times too: they are the events' times).
    assert reps_after == reps_before
    assert leads_after == leads_before

"""Several router instances in one consumer group share one rotation: exact weights, no
turn used twice; then a rebuild from the topics gives the very same assignments."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
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

from .conftest import router_settings
from .rep_helpers import create_reps
from .router_events import T0, form, routing_events
from .router_instances import Instances

pytestmark = pytest.mark.infra

LEADS = 1000
INSTANCES = 3
REPS = [
    {"id": "R1", "role": "SDR", "region": "AMER", "certified": True, "weight": 1},
    {"id": "RP", "role": "SDR", "region": "AMER", "certified": True, "paused": True},
    {"id": "R2", "role": "SDR", "region": "AMER", "certified": True, "weight": 1},
    {"id": "R3", "role": "SDR", "region": "AMER", "certified": True, "weight": 2},
]


async def assignments(settings: RouterSettings) -> dict[str, tuple[Any, ...]]:
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                m.leads.c.email,
                m.leads.c.owner_id,
                m.leads.c.rule,
                m.leads.c.queue,
                m.leads.c.turn,
                m.leads.c.reason,
            )
        )
        out = {r.email: tuple(r)[1:] for r in rows}
    await engine.dispose()
    return out


async def wait_for_leads(client: httpx.AsyncClient, count: int, day: date) -> None:
    async def check() -> None:
        r = await client.get("/queues", params={"day": day.isoformat()})
        assert r.status_code == 200
        amer = next(q for q in r.json()["queues"] if q["name"] == "inbound-AMER")
        assert sum(x["assigned_today"] for x in amer["members"]) == count, amer

    await eventually(check, timeout_s=120, interval_s=0.5)


async def test_shared_rotation_is_exactly_fair_and_replay_is_identical(
    kafka_settings: KafkaSettings,
):
    settings = router_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    day = T0 + timedelta(days=400)
    events = [
        form(f"lead{i:04d}@company{i:04d}.com", day + timedelta(seconds=i)) for i in range(LEADS)
    ]

    first_run = Instances(settings, INSTANCES)
    async with first_run as client:
        await create_reps(client, REPS)
        await publish(kafka_settings, events)
        await wait_for_leads(client, LEADS, day.date())
        r = await client.get("/queues", params={"day": day.date().isoformat()})
        amer = next(q for q in r.json()["queues"] if q["name"] == "inbound-AMER")

        # Published before the relay finished? Wait for every decision on the topic.
        async def all_published() -> None:
            routed = [e for e in await routing_events(kafka_settings) if e.type == "lead.routed"]
            assert len({e.payload.lead_id for e in routed}) == LEADS

        await eventually(all_published, timeout_s=60, interval_s=1)

    assert sum(1 for h in first_run.handled if h > 0) >= 2, first_run.handled
    first = await assignments(settings)
    counts = Counter(owner for owner, *_ in first.values())
    # 1,000 leads = 250 whole cycles of R1, R2, R3, R3 (RP's place is passed each cycle).
    assert counts == {"R1": 250, "R2": 250, "R3": 500}
    turns = [turn for *_, turn, _ in (v for v in first.values())]
    assert len(set(turns)) == LEADS
    assert max(turns) == LEADS - 1 and amer["turn"] == LEADS  # a slot per turn
    assert {rule for _, rule, *_ in first.values()} == {"round_robin"}
    members = {x["rep_id"]: x for x in amer["members"]}
    assert members["RP"]["assigned_today"] == 0 and members["RP"]["eligible"] is False

    # Rebuild: stop everything, empty the schema, rewind the group, start two instances
    # (the roster comes back from its topic like the rest).
    await fresh_schema(SPEC, settings.resolved_database_url())
    group = f"{settings.topic_prefix}{settings.service_name}"
    await admin.reset_group_to_start(
        settings.kafka_bootstrap_servers,
        group,
        [t.name(settings.topic_prefix) for t in SPEC.topics],
    )
    instances = Instances(settings, 2)
    async with instances as client:
        await wait_for_leads(client, LEADS, day.date())
    # (The first instance up may rebuild everything before the second joins: fine.)
    assert sum(instances.handled) >= LEADS
    second = await assignments(settings)
    assert second == first

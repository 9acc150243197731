"""Causal order: a CRM change that Kafka acknowledged before a form was sent is applied
before the form's lead is routed, with one router instance or two, without any pause
between the two; and a state partition that no instance applies holds a lead only up to
the bound, which its reason then says."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from revops.events import topics
from revops.events.catalogue import Envelope
from revops.events.producer import EventProducer
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, eventually, fresh_schema, unique_prefix
from revops.router import models as m
from revops.router.causal_order import person_to_json, release_held_leads
from revops.router.context import RouterContext
from revops.router.leads import NewPerson
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import router_settings
from .rep_helpers import create_reps
from .router_events import T0, account, form, touch
from .router_instances import Instances

pytestmark = pytest.mark.infra

TRIALS = 200
REPS: list[dict[str, Any]] = [
    {"id": "S1", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "S2", "role": "SDR", "region": "AMER", "certified": True},
    # Not in the rotation (uncertified), so only the account's task can give it a lead.
    {"id": "TASKER", "role": "SDR", "region": "AMER"},
]


@pytest.fixture
async def fresh_kafka(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaSettings]:
    """Topics of their own: each test starts its consumer group on empty partitions."""
    settings = kafka_settings.model_copy(update={"topic_prefix": unique_prefix()})
    await create_topics(settings)
    yield settings


async def leads(settings: RouterSettings) -> dict[str, dict[str, Any]]:
    engine = create_async_engine(settings.resolved_database_url())
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(m.leads))
            return {r.email: dict(r._mapping) for r in rows}
    finally:
        await engine.dispose()


async def wait_for_leads(settings: RouterSettings, count: int) -> dict[str, dict[str, Any]]:
    async def all_routed() -> dict[str, dict[str, Any]]:
        found = await leads(settings)
        assert len(found) == count, f"{len(found)} of {count} leads routed"
        return found

    return await eventually(all_routed, timeout_s=120, interval_s=0.2)


def stale(found: dict[str, dict[str, Any]]) -> list[str]:
    """The trials whose lead was decided without its account or the SDR's task."""
    wrong = []
    for i in range(TRIALS):
        lead = found[f"buyer{i}@trial{i}.example"]
        decided = (lead["account_id"], lead["rule"], lead["owner_id"])
        if decided != (f"001T{i}", "recent_touch", "TASKER") or "waiting" in lead["reason"]:
            wrong.append(f"trial {i}: {decided} {lead['reason']!r}")
    return wrong


async def state_offsets_now(kafka: KafkaSettings, reader: AIOKafkaConsumer) -> dict[str, list[int]]:
    """What ingest stamps on a new lead: the CRM state topics' end offsets, read now."""
    names = [t.name(kafka.topic_prefix) for t in topics.CRM_STATE]
    partitions = [
        TopicPartition(name, p)
        for name, spec in zip(names, topics.CRM_STATE, strict=True)
        for p in range(spec.partitions)
    ]
    ends = await reader.end_offsets(partitions)
    return {
        name: [ends[TopicPartition(name, p)] for p in range(spec.partitions)]
        for name, spec in zip(names, topics.CRM_STATE, strict=True)
    }


async def run_trials(kafka: KafkaSettings, instances: int, *, stamped: bool = False) -> list[str]:
    """Each trial: an account and an SDR's task on it, acknowledged; then at once a form
    from a person at that account. No pause anywhere. ``stamped``: the form carries the
    state offsets as ingest stamps them; else the router reads them itself."""
    settings = router_settings(kafka)
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with Instances(settings, instances) as client:
        await create_reps(client, REPS)
        producer = EventProducer(kafka, client_id="trials")
        reader = AIOKafkaConsumer(bootstrap_servers=kafka.kafka_bootstrap_servers)
        await reader.start()
        try:
            for i in range(TRIALS):
                at = T0 + timedelta(minutes=i)
                await producer.publish(
                    [
                        account(f"001T{i}", f"Trial {i}", [f"trial{i}.example"], at),
                        touch("TASKER", at, account_id=f"001T{i}"),
                    ]
                )
                lead = form(f"buyer{i}@trial{i}.example", at)
                if stamped:
                    offsets = await state_offsets_now(kafka, reader)
                    lead = lead.model_copy(update={"state_offsets": offsets})
                await producer.publish([lead])
        finally:
            await producer.stop()
            await reader.stop()
        return stale(await wait_for_leads(settings, TRIALS))


async def test_no_lead_is_routed_on_stale_crm_state_with_one_router(fresh_kafka: KafkaSettings):
    assert await run_trials(fresh_kafka, instances=1) == []


async def test_no_lead_is_routed_on_stale_crm_state_with_two_routers(fresh_kafka: KafkaSettings):
    assert await run_trials(fresh_kafka, instances=2) == []


async def test_no_lead_stamped_as_ingest_stamps_it_is_routed_on_stale_state_one_router(
    fresh_kafka: KafkaSettings,
):
    assert await run_trials(fresh_kafka, instances=1, stamped=True) == []


async def test_no_lead_stamped_as_ingest_stamps_it_is_routed_on_stale_state_two_routers(
    fresh_kafka: KafkaSettings,
):
    assert await run_trials(fresh_kafka, instances=2, stamped=True) == []


def partition_of(event: Envelope, spec: topics.TopicSpec) -> int:
    every = list(range(spec.partitions))
    return int(DefaultPartitioner()(event.key.encode(), every, every))


async def test_a_stalled_state_partition_holds_a_lead_only_up_to_the_bound(
    fresh_kafka: KafkaSettings,
):
    settings = router_settings(fresh_kafka, crm_state_wait_s=1.0)
    await fresh_schema(SPEC, settings.resolved_database_url())
    instances = Instances(settings, 2)
    async with instances as client:
        await create_reps(client, REPS)
        # Instance 1 stops applying its batches: the partitions it owns stall.
        stalled = instances.apps[1].state.runtime.consumer
        owned = stalled._consumer.assignment()
        gate = asyncio.Event()
        inner = stalled._handle_batch

        async def stuck(session: Any, events: Any) -> None:
            await gate.wait()
            await inner(session, events)

        stalled._handle_batch = stuck
        accounts = topics.ACCOUNTS.name(fresh_kafka.topic_prefix)
        forms = topics.FORMS.name(fresh_kafka.topic_prefix)
        # An account on a partition of the stalled instance, a form the other one reads.
        owned_by_stalled = {(tp.topic, tp.partition) for tp in owned}
        change = next(
            e
            for e in (account(f"001S{i}", "Stalled", ["stalled.example"], T0) for i in range(99))
            if (accounts, partition_of(e, topics.ACCOUNTS)) in owned_by_stalled
        )
        lead = next(
            f
            for f in (form(f"buyer{i}@stalled.example", T0) for i in range(99))
            if (forms, partition_of(f, topics.FORMS)) not in owned_by_stalled
        )
        producer = EventProducer(fresh_kafka, client_id="stall")
        try:
            await producer.publish([change])
            await producer.publish([lead])
        finally:
            await producer.stop()
        try:
            found = await wait_for_leads(settings, 1)
        finally:
            gate.set()
    routed = found[lead.payload.email]
    partition = f"{accounts}:{partition_of(change, topics.ACCOUNTS)}"
    assert routed["account_id"] is None  # routed without the stalled change...
    assert re.search(
        r"routed after waiting \d+\.\d s for CRM changes not yet applied", routed["reason"]
    )
    assert partition in routed["reason"]  # ...and saying which partition it waited for


async def test_a_lead_waits_for_a_partition_that_moves_and_not_past_the_bound_for_one_that_stopped(
    kafka_settings: KafkaSettings,
):
    """The release rule itself, against the database's clock: ``moving`` advanced a moment
    ago, ``stalled`` 10 s ago, both still short of the leads' watermarks."""
    settings = router_settings(kafka_settings, crm_state_wait_s=1.0, crm_state_wait_max_s=30.0)
    await fresh_schema(SPEC, settings.resolved_database_url())
    ctx = RouterContext.of(settings)
    engine = create_async_engine(settings.resolved_database_url())
    held = {  # name: (watermark, seconds held)
        "behind-moving": ({"moving:0": 9}, 5),
        "behind-stalled": ({"stalled:0": 9}, 5),
        "behind-moving-too-long": ({"moving:0": 9}, 40),
        "behind-stalled-just-held": ({"stalled:0": 9}, 0),
        "met": ({"moving:0": 5}, 0),
    }
    try:
        async with engine.begin() as conn:
            now = await conn.scalar(sa.select(sa.func.clock_timestamp()))
            assert now is not None
            await conn.execute(
                sa.insert(m.applied_offsets),
                [
                    {"topic": "moving", "partition": 0, "next_offset": 5, "advanced_at": now},
                    {
                        "topic": "stalled",
                        "partition": 0,
                        "next_offset": 5,
                        "advanced_at": now - timedelta(seconds=10),
                    },
                ],
            )
            await conn.execute(
                sa.insert(m.held_leads),
                [
                    {
                        "event_id": name,
                        "email": f"{name}@example.com",
                        "person": person_to_json(_person(name)),
                        "watermark": watermark,
                        "held_since": now - timedelta(seconds=age),
                    }
                    for name, (watermark, age) in held.items()
                ],
            )
        async with AsyncSession(engine) as session, session.begin():
            released = await release_held_leads(session, ctx, timedelta(seconds=1))
        async with engine.connect() as conn:
            still_held = set((await conn.scalars(sa.select(m.held_leads.c.event_id))).all())
    finally:
        await engine.dispose()
    assert released is not None
    routed = {p.event_id: p for p in released}
    assert set(routed) == {"behind-stalled", "behind-moving-too-long", "met"}
    assert still_held == {"behind-moving", "behind-stalled-just-held"}
    assert routed["met"].waited is None  # its state was applied: routed with it
    assert "on stalled:0" in (routed["behind-stalled"].waited or "")
    assert "routed after waiting 40." in (routed["behind-moving-too-long"].waited or "")


def _person(name: str) -> NewPerson:
    return NewPerson(
        event_id=name,
        email=f"{name}@example.com",
        occurred_at=datetime(2026, 12, 3, tzinfo=UTC),
        kind="form",
        form_type="demo",
        country="US",
        is_consultant=False,
        source_ref=None,
        created_by_id=None,
    )

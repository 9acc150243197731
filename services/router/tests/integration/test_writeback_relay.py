"""The relay's CRM calls against a local server speaking HubSpot's format: a 429 is "later"
and never a failure, a hanging CRM holds back no Kafka row, at most N calls are open at
once, and a call cut short by a crash is made again once its lease ends."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Row, select

from revops.events.catalogue import LeadRoutedEvent
from revops.events.db import Database
from revops.events.outbox import OutboxRelay, add_message
from revops.events.producer import EventProducer
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.context import HUBSPOT_OWNER
from revops.router.main import SPEC
from revops.router.settings import RouterSettings
from revops.router.writeback import CrmIds, CrmWriteback

from .conftest import router_settings, running_router
from .fake_crm import TOKEN, FakeCrm, running_fake_crm
from .rep_helpers import create_reps
from .router_events import T0, form, routing_events

pytestmark = pytest.mark.infra

OUTBOX = m.metadata.tables["router.outbox"]


async def lookup(rep_id: str) -> CrmIds | None:
    return CrmIds(hubspot_owner_id=f"hs-{rep_id}")


def crm_router_settings(kafka_settings: KafkaSettings, crm: FakeCrm, **kw: Any) -> RouterSettings:
    return router_settings(
        kafka_settings, hubspot_api_base=crm.url, hubspot_access_token=TOKEN, **kw
    )


@dataclass
class Relaying:
    crm: FakeCrm
    database: Database
    settings: RouterSettings
    writeback: CrmWriteback
    producer: EventProducer

    def relay(self, **kw: Any) -> OutboxRelay:
        return OutboxRelay(
            settings=self.settings,
            database=self.database,
            outbox=OUTBOX,
            producer=self.producer,
            senders={HUBSPOT_OWNER: self.writeback.hubspot_owner},
            **kw,
        )

    async def queue(self, *contact_ids: str) -> None:
        async with self.database.transaction() as session:
            for contact_id in contact_ids:
                value = {"object_type": "contact", "object_id": contact_id, "owner_id": "sdr-1"}
                await add_message(
                    session,
                    OUTBOX,
                    event_id=f"wb-{contact_id}",
                    destination=HUBSPOT_OWNER,
                    key=contact_id,
                    value=json.dumps(value).encode(),
                )

    async def row(self, contact_id: str) -> Row[Any]:
        async with self.database.transaction() as session:
            query = select(OUTBOX).where(OUTBOX.c.event_id == f"wb-{contact_id}")
            return (await session.execute(query)).one()


@pytest.fixture
async def relaying(kafka_settings: KafkaSettings) -> AsyncIterator[Relaying]:
    """A relay's parts against a fresh schema and a fake CRM (each test builds its relay)."""
    async with running_fake_crm() as crm:
        settings = crm_router_settings(kafka_settings, crm)
        await fresh_schema(SPEC, settings.resolved_database_url())
        database = Database(settings.resolved_database_url(), "router")
        writeback = CrmWriteback(settings, reps=lookup)
        producer = EventProducer(settings)
        try:
            yield Relaying(crm, database, settings, writeback, producer)
        finally:
            await producer.stop()
            await writeback.aclose()
            await database.dispose()


@asynccontextmanager
async def relay_running(relay: OutboxRelay) -> AsyncIterator[None]:
    """The relay's loops running for the block (as the service runs them)."""
    running = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        relay.stop()
        await asyncio.wait_for(running, 10)


async def test_a_429_waits_its_retry_after_and_never_counts_an_attempt(relaying: Relaying):
    crm = relaying.crm
    # More 429s than the relay's attempts: counted, they would fail the row.
    crm.rate_limited["c429"] = 3
    await relaying.queue("c429")
    relay = relaying.relay(max_attempts=2)

    async def limited_three_times() -> None:
        assert len(crm.call_times.get("c429", [])) == 3
        row = await relaying.row("c429")
        assert row.attempts == 0 and row.failed_at is None
        assert "429" in row.last_error
        # Rescheduled at the Retry-After (1 s), not by the failure backoff.
        assert row.next_attempt_at > datetime.now(UTC)
        assert row.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=1.5)

    async def sent() -> None:
        row = await relaying.row("c429")
        assert row.sent_at is not None
        assert row.attempts == 1 and row.failed_at is None and row.last_error is None

    async with relay_running(relay):
        await eventually(limited_three_times, timeout_s=15, interval_s=0.05)
        await eventually(sent, timeout_s=15)  # the CRM stopped answering 429
    assert crm.hubspot_owner == {"c429": "hs-sdr-1"}
    times = crm.call_times["c429"]
    assert len(times) == 4
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times))


async def test_at_most_the_configured_number_of_calls_are_open_at_once(relaying: Relaying):
    crm = relaying.crm
    crm.hold_every_call = True
    contacts = [f"cc{i}" for i in range(10)]
    await relaying.queue(*contacts)
    relay = relaying.relay(concurrency=3)
    async with relay_running(relay):

        async def three_open() -> None:
            assert crm.in_flight == 3

        await eventually(three_open, timeout_s=15, interval_s=0.02)
        # Let the relay look for due rows several more times while the three hang.
        passes = relay.send_passes

        async def looked_again() -> None:
            relay.wake()
            assert relay.send_passes >= passes + 3

        await eventually(looked_again, timeout_s=15, interval_s=0.05)
        assert crm.in_flight == 3 and crm.max_in_flight == 3
        crm.released.set()

        async def all_sent() -> None:
            assert sorted(crm.hubspot_owner) == sorted(contacts)

        await eventually(all_sent, timeout_s=30)
    assert crm.max_in_flight == 3


async def test_a_call_cut_short_by_a_crash_is_made_again_when_its_lease_ends(
    relaying: Relaying,
):
    crm = relaying.crm
    crm.held.add("crash")
    await relaying.queue("crash")
    crashed = relaying.relay(lease_s=2)
    assert await crashed.send_once() == 1

    async def call_open() -> None:
        assert crm.in_flight == 1

    await eventually(call_open, timeout_s=10)
    leased_at = time.monotonic()
    # The process dies mid-call: nothing is recorded, nothing released.
    for task in list(crashed._in_flight.values()):
        task.cancel()
    row = await relaying.row("crash")
    assert row.sent_at is None and row.failed_at is None and row.attempts == 0
    assert row.next_attempt_at > datetime.now(UTC)  # leased

    crm.held.clear()
    successor = relaying.relay()
    assert await successor.send_once() == 0  # not while the lease lasts

    async def sent_again() -> None:
        row = await relaying.row("crash")
        assert row.sent_at is not None and row.attempts == 1

    async with relay_running(successor):
        await eventually(sent_again, timeout_s=15)
    assert time.monotonic() - leased_at >= 1.5
    assert crm.hubspot_owner == {"crash": "hs-sdr-1"}
    assert len(crm.call_times["crash"]) == 2


async def test_a_hanging_crm_holds_back_no_routed_lead(kafka_settings: KafkaSettings):
    async with running_fake_crm() as crm:
        # The HTTP client would wait a minute: only the relay's design can keep it out.
        settings = crm_router_settings(kafka_settings, crm, writeback_timeout_s=60)
        await fresh_schema(SPEC, settings.resolved_database_url())
        async with running_router(settings) as client:
            rep = {"id": "sdr-1", "role": "SDR", "region": "AMER", "certified": True}
            await create_reps(client, [{**rep, "hubspot_owner_id": "hs-owner-1"}])
            crm.held.add("hs-hang")
            at = T0 + timedelta(days=5)
            await publish(kafka_settings, [form("hang@example.com", at, hubspot_id="hs-hang")])

            async def call_hanging() -> None:
                assert crm.in_flight == 1

            await eventually(call_hanging, timeout_s=30)
            await publish(kafka_settings, [form("next@example.com", at)])

            async def next_lead_routed() -> None:
                routed = {
                    e.payload.email
                    for e in await routing_events(kafka_settings)
                    if isinstance(e, LeadRoutedEvent)
                }
                assert "next@example.com" in routed

            await eventually(next_lead_routed, timeout_s=20)
            # Published while the CRM call was still open.
            assert crm.in_flight == 1 and "hs-hang" not in crm.hubspot_owner
            crm.released.set()

            async def written_back() -> None:
                assert crm.hubspot_owner == {"hs-hang": "hs-owner-1"}

            await eventually(written_back, timeout_s=20)

"""The batch path (a batch's events noted, written and decided at once) and the
one-event-at-a-time path (the runner's fallback) store the same facts and decisions from
the same records; a redelivered batch changes nothing."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from revops.attribution import models
from revops.attribution.consumer import apply_events, make_batch_handler, make_handler
from revops.attribution.decisions import Rules
from revops.attribution.main import SPEC
from revops.attribution.settings import AttributionSettings
from revops.attribution.simulate import generate
from revops.events.catalogue import (
    Envelope,
    Event,
    LeadConverted,
    LeadConvertedEvent,
    PersonChanged,
    PersonChangedEvent,
    SourceRef,
    make_event,
)
from revops.events.codec import decode_event, encode_event
from revops.events.consumer import ConsumerRunner
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.testing import fresh_schema

pytestmark = pytest.mark.infra

TABLES = (
    models.people,
    models.person_refs,
    models.touches,
    models.conversions,
    models.opportunities,
    models.opportunity_influence,
)


@dataclass(frozen=True)
class Record:
    """What the runner reads of a Kafka record."""

    topic: str
    value: bytes
    offset: int
    partition: int = 0
    key: bytes = b""
    headers: tuple[tuple[str, bytes], ...] = field(default=())


def records(events: Sequence[Envelope]) -> list[Record]:
    return [Record(e.topic.name("t-"), encode_event(e), n) for n, e in enumerate(events)]


def crm_only_person(event_id: str, object_id: str, after: Envelope) -> PersonChangedEvent:
    """A CRM update naming the person by its CRM id only (no email), a day after `after`."""
    return make_event(
        PersonChangedEvent,
        id=event_id,
        source="salesforce",
        occurred_at=after.occurred_at + timedelta(days=1),
        payload=PersonChanged(
            person_type="contact",
            change="updated",
            source_ref=SourceRef(system="salesforce", object_type="Contact", object_id=object_id),
            lead_source="Event",
            account_id="001moved",
        ),
    )


def mixed_history() -> tuple[list[Envelope], list[Envelope]]:
    """Two batches of a generated history (forms, sign-ups, CRM people, conversions,
    opportunities), the second shuffled, with CRM events naming people by CRM id only:
    one known from the first batch (stored), one from earlier in the second; and a
    conversion naming its lead only by CRM id, before the lead's own event."""
    history = generate(1200, seed=5)
    first, second = history[:500], history[500:]
    people = [e for e in history if isinstance(e, PersonChangedEvent)]
    stored = next(e for e in people if e in first)
    known = {e.payload.source_ref.object_id for e in people if e in first}
    in_batch = next(
        e for e in people if e in second and e.payload.source_ref.object_id not in known
    )
    lead = make_event(
        PersonChangedEvent,
        id="lead-late",
        source="salesforce",
        occurred_at=second[10].occurred_at,
        payload=PersonChanged(
            person_type="lead",
            change="created",
            source_ref=SourceRef(system="salesforce", object_type="Lead", object_id="00Qlate"),
            email="late@acct1.example",
            lead_source="Inbound",
            account_id="0011",
            created_at=second[10].occurred_at,
        ),
    )
    conversion = make_event(
        LeadConvertedEvent,
        id="conversion-early",
        source="salesforce",
        occurred_at=second[20].occurred_at,
        payload=LeadConverted(lead_id="00Qlate", account_id="0011", opportunity_id="006late"),
    )
    extra: list[Envelope] = [
        crm_only_person("crm-only-stored", stored.payload.source_ref.object_id, history[-1]),
        crm_only_person("crm-only-in-batch", in_batch.payload.source_ref.object_id, history[-1]),
        conversion,
        lead,
    ]
    shuffled = [*second, *extra]
    random.Random(2).shuffle(shuffled)
    # The events that need an earlier one of the batch come after it.
    shuffled.remove(extra[1])
    shuffled.append(extra[1])
    shuffled.remove(lead)
    shuffled.append(lead)
    return first, shuffled


async def state(database: Database) -> dict[str, list[str]]:
    async with database.transaction() as session:
        return {
            table.name: sorted(
                repr(sorted(row.items()))
                for row in (await session.execute(select(table))).mappings()
            )
            for table in TABLES
        }


async def inbox_size(database: Database) -> int:
    async with database.transaction() as session:
        count: int = (
            await session.execute(select(func.count()).select_from(SPEC.inbox))
        ).scalar_one()
        return count


@dataclass
class Paths:
    """Runners over the same records: one with the batch handler, one without it (every
    event through the per-event handler, as the fallback applies them)."""

    settings: AttributionSettings
    database: Database
    producer: EventProducer
    calls: dict[str, int] = field(default_factory=lambda: {"batch": 0, "single": 0})

    def runner(self, *, batch: bool) -> ConsumerRunner:
        handle_batch, handle = make_batch_handler(self.settings), make_handler(self.settings)

        async def counted_batch(session: Any, events: list[Event]) -> None:
            await handle_batch(session, events)
            self.calls["batch"] += 1

        async def counted_single(session: Any, event: Event) -> None:
            await handle(session, event)
            self.calls["single"] += 1

        return ConsumerRunner(
            settings=self.settings,
            database=self.database,
            inbox=SPEC.inbox,
            topics=SPEC.topics,
            handle=counted_single,
            handle_batch=counted_batch if batch else None,
            producer=self.producer,
        )


@pytest.fixture
async def paths(settings: AttributionSettings) -> AsyncIterator[Paths]:
    database = Database(settings.resolved_database_url(), SPEC.name)
    producer = EventProducer(settings)
    yield Paths(settings, database, producer)
    await producer.stop()
    await database.dispose()
    await fresh_schema(SPEC, settings.resolved_database_url())


async def test_the_batch_path_and_one_event_at_a_time_store_the_same(paths: Paths) -> None:
    first, second = mixed_history()
    url = paths.settings.resolved_database_url()

    await fresh_schema(SPEC, url)
    one_by_one = paths.runner(batch=False)
    assert await one_by_one.apply_batch(records(first)) == []
    assert await one_by_one.apply_batch(records(second)) == []
    assert paths.calls == {"batch": 0, "single": len(first) + len(second)}
    expected = await state(paths.database)
    assert len(expected["opportunity_influence"]) > 50
    # The CRM-id-only events found their people, and the early conversion its lead.
    people = "\n".join(expected["people"])
    assert "001moved" in people and "'ref:" not in people
    late = [row for row in expected["opportunities"] if "'006late'" in row]
    assert len(late) == 1 and "'late@acct1.example'" in late[0]

    await fresh_schema(SPEC, url)
    paths.calls.update(batch=0, single=0)
    batches = paths.runner(batch=True)
    assert await batches.apply_batch(records(first)) == []
    assert await batches.apply_batch(records(second)) == []
    # Both batches went through the batch handler: no fallback hid a failure.
    assert paths.calls == {"batch": 2, "single": 0}
    assert await state(paths.database) == expected

    # Redelivered: the inbox skips every event, nothing changes.
    applied = await inbox_size(paths.database)
    assert await batches.apply_batch(records(second)) == []
    assert await inbox_size(paths.database) == applied
    assert await state(paths.database) == expected
    # Even applied again past the inbox, the facts and decisions stay as they are.
    rules = Rules.from_settings(paths.settings)
    async with paths.database.transaction() as session:
        await apply_events(session, rules, [decode_event(r.value) for r in records(second)])
    assert await state(paths.database) == expected

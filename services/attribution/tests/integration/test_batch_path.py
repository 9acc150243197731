"""The batch path (a batch's events noted, written and decided at once) and the
one-event-at-a-time path (the runner's fallback) store the same facts and decisions from
the same records; a redelivered batch changes nothing."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import func, select

from revops.attribution import models
from revops.attribution.consumer import apply_events, make_batch_handler, make_handler
from revops.attribution.decisions import Rules
from revops.attribution.main import SPEC
from revops.attribution.settings import AttributionSettings
from revops.attribution.simulate import generate
from revops.events.catalogue import Envelope, Event, FormSubmittedEvent, PersonChangedEvent
from revops.events.codec import decode_event, encode_event
from revops.events.consumer import ConsumerRunner
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.testing import (
    form_submitted,
    fresh_schema,
    lead_converted,
    opportunity_changed,
    person_changed,
)

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
    return person_changed(
        "contact",
        object_id,
        after.occurred_at + timedelta(days=1),
        change="updated",
        id=event_id,
        lead_source="Event",
        account_id="001moved",
    )


def status_change_and_forms() -> tuple[list[Envelope], list[Envelope], list[Envelope]]:
    """A contact, their first form and an opportunity on their account; then, in one
    batch, a CRM update that moves nothing the decisions read (a status) and a late form
    of theirs in the opportunity's window; in a third, another status change and two late
    forms, exactly 30 days and 30 days and a second before the opportunity. It must count
    the forms in its window, each one when it is the batch's only news for it."""
    day0 = datetime(2026, 3, 1, tzinfo=UTC)
    email, account = "story@acme-story.example", "001story"

    def contact(
        event_id: str, at: datetime, change: Literal["created", "updated"]
    ) -> PersonChangedEvent:
        return person_changed(
            "contact",
            "003story",
            at,
            change=change,
            id=event_id,
            email=email,
            lead_source="Inbound" if change == "created" else None,
            status=None if change == "created" else "Working",
            account_id=account,
            created_at=day0,
        )

    def form(event_id: str, at: datetime, campaign_id: str) -> FormSubmittedEvent:
        return form_submitted(
            email, at, id=event_id, form_id="form-story", form_type="ebook", campaign_id=campaign_id
        )

    created = day0 + timedelta(days=40)
    window = timedelta(days=30)
    opportunity = opportunity_changed(
        "006story",
        created,
        change="created",
        id="story-opportunity",
        account_id=account,
        stage="1 - Interest",
    )
    before = [
        contact("story-created", day0, "created"),
        form("story-first-form", day0 + timedelta(hours=1), "cmp-first"),
        opportunity,
    ]
    together = [
        contact("story-status", day0 + timedelta(days=45), "updated"),
        form("story-late-form", day0 + timedelta(days=35), "cmp-story"),
    ]
    edge = [
        contact("story-status-2", day0 + timedelta(days=46), "updated"),
        form("story-outside", created - window - timedelta(seconds=1), "cmp-outside"),
        form("story-edge", created - window, "cmp-edge"),
    ]
    return before, together, edge


def mixed_history() -> list[list[Envelope]]:
    """Batches of a generated history (forms, sign-ups, CRM people, conversions,
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
    lead = person_changed(
        "lead",
        "00Qlate",
        second[10].occurred_at,
        change="created",
        id="lead-late",
        email="late@acct1.example",
        lead_source="Inbound",
        account_id="0011",
    )
    conversion = lead_converted(
        "00Qlate",
        second[20].occurred_at,
        account_id="0011",
        id="conversion-early",
        opportunity_id="006late",
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
    before, together, edge = status_change_and_forms()
    return [[*first, *before], [*shuffled, *together], edge]


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
    batches = mixed_history()
    url = paths.settings.resolved_database_url()

    await fresh_schema(SPEC, url)
    one_by_one = paths.runner(batch=False)
    for batch in batches:
        assert await one_by_one.apply_batch(records(batch)) == []
    assert paths.calls == {"batch": 0, "single": sum(len(batch) for batch in batches)}
    expected = await state(paths.database)
    assert len(expected["opportunity_influence"]) > 50
    # The CRM-id-only events found their people, and the early conversion its lead.
    people = "\n".join(expected["people"])
    assert "001moved" in people and "'ref:" not in people
    late = [row for row in expected["opportunities"] if "'006late'" in row]
    assert len(late) == 1 and "'late@acct1.example'" in late[0]
    story = "\n".join(row for row in expected["opportunity_influence"] if "'006story'" in row)
    assert story.count("'006story'") == 2
    assert "'cmp-story'" in story and "'cmp-edge'" in story

    await fresh_schema(SPEC, url)
    paths.calls.update(batch=0, single=0)
    at_once = paths.runner(batch=True)
    for batch in batches:
        assert await at_once.apply_batch(records(batch)) == []
    # Every batch went through the batch handler: no fallback hid a failure.
    assert paths.calls == {"batch": len(batches), "single": 0}
    assert await state(paths.database) == expected

    # Redelivered: the inbox skips every event, nothing changes.
    applied = await inbox_size(paths.database)
    assert await at_once.apply_batch(records(batches[1])) == []
    assert await inbox_size(paths.database) == applied
    assert await state(paths.database) == expected
    # Even applied again past the inbox, the facts and decisions stay as they are.
    rules = Rules.from_settings(paths.settings)
    async with paths.database.transaction() as session:
        events = [decode_event(r.value) for r in records(batches[1])]
        await apply_events(session, rules, events)
    assert await state(paths.database) == expected

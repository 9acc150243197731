"""Event builders for the router's integration tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from revops.events import topics
from revops.events.catalogue import (
    AccountChangedEvent,
    ActivityLoggedEvent,
    Event,
    FormSubmittedEvent,
    LeadConvertedEvent,
    OpportunityChangedEvent,
    PersonChangedEvent,
    SourceRef,
)
from revops.events.codec import decode_event
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    account_changed,
    activity_logged,
    form_submitted,
    lead_converted,
    opportunity_changed,
    person_changed,
    salesforce_ref,
)

_ids = itertools.count(1)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _id(kind: str) -> str:
    return f"{kind}-{next(_ids)}"


sf = salesforce_ref


def form(
    email: str,
    at: datetime,
    *,
    country: str | None = "US",
    form_type: str = "ebook",
    consultant: bool = False,
    hubspot_id: str | None = None,
) -> FormSubmittedEvent:
    ref = (
        SourceRef(system="hubspot", object_type="contact", object_id=hubspot_id)
        if hubspot_id
        else None
    )
    return form_submitted(
        email,
        at,
        id=_id("form"),
        form_type=form_type,
        country=country,
        is_consultant=consultant,
        source_ref=ref,
    )


def account(
    account_id: str,
    name: str,
    domains: list[str],
    at: datetime,
    *,
    owner: str | None = None,
    country: str = "US",
) -> AccountChangedEvent:
    return account_changed(
        account_id,
        at,
        change="updated",
        id=_id("acct"),
        name=name,
        domains=domains,
        owner_id=owner,
        country=country,
    )


def touch(
    rep: str,
    at: datetime,
    *,
    account_id: str | None = None,
    email: str | None = None,
    lead_id: str | None = None,
) -> ActivityLoggedEvent:
    return activity_logged(
        at,
        kind="call",
        id=_id("act"),
        rep_id=rep,
        account_id=account_id,
        email=email,
        lead_id=lead_id,
    )


def opportunity(
    opp_id: str, account_id: str, owner: str, at: datetime, *, closed: bool = False
) -> OpportunityChangedEvent:
    return opportunity_changed(
        opp_id,
        at,
        change="created",
        id=_id("opp"),
        account_id=account_id,
        owner_id=owner,
        is_closed=closed,
        close_date=at.date(),
    )


def lead_status(email: str, lead_id: str, status: str, at: datetime) -> PersonChangedEvent:
    return person_changed(
        "lead", lead_id, at, change="updated", id=_id("person"), email=email, status=status
    )


def converted(
    lead_id: str, email: str, account_id: str, opp_id: str, at: datetime
) -> LeadConvertedEvent:
    return lead_converted(
        lead_id, at, account_id=account_id, id=_id("conv"), opportunity_id=opp_id, email=email
    )


async def routing_events(kafka_settings: KafkaSettings) -> list[Event]:
    """Everything on the routing topic right now (reads up to the end offsets)."""
    topic = topics.ROUTING.name(kafka_settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(topics.ROUTING.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        events: list[Event] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                events.extend(decode_event(r.value) for r in records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return events
    finally:
        await consumer.stop()

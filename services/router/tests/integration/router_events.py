"""Event builders for the router's integration tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from revops.events import topics
from revops.events.catalogue import (
    AccountChanged,
    AccountChangedEvent,
    ActivityLogged,
    ActivityLoggedEvent,
    Event,
    FormSubmitted,
    FormSubmittedEvent,
    LeadConverted,
    LeadConvertedEvent,
    OpportunityChanged,
    OpportunityChangedEvent,
    PersonChanged,
    PersonChangedEvent,
    SourceRef,
    make_event,
)
from revops.events.codec import decode_event
from revops.events.settings import KafkaSettings

_ids = itertools.count(1)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _id(kind: str) -> str:
    return f"{kind}-{next(_ids)}"


def sf(object_type: str, object_id: str) -> SourceRef:
    return SourceRef(system="salesforce", object_type=object_type, object_id=object_id)


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
    return make_event(
        FormSubmittedEvent,
        id=_id("form"),
        source="hubspot",
        occurred_at=at,
        payload=FormSubmitted(
            email=email,
            form_type=form_type,
            country=country,
            is_consultant=consultant,
            source_ref=ref,
        ),
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
    return make_event(
        AccountChangedEvent,
        id=_id("acct"),
        source="salesforce",
        occurred_at=at,
        payload=AccountChanged(
            account_id=account_id,
            change="updated",
            name=name,
            domains=domains,
            owner_id=owner,
            country=country,
            source_ref=sf("Account", account_id),
        ),
    )


def touch(
    rep: str,
    at: datetime,
    *,
    account_id: str | None = None,
    email: str | None = None,
    lead_id: str | None = None,
) -> ActivityLoggedEvent:
    aid = _id("act")
    return make_event(
        ActivityLoggedEvent,
        id=aid,
        source="salesforce",
        occurred_at=at,
        payload=ActivityLogged(
            activity_id=aid,
            kind="call",
            rep_id=rep,
            account_id=account_id,
            email=email,
            lead_id=lead_id,
            source_ref=sf("Task", aid),
        ),
    )


def opportunity(
    opp_id: str, account_id: str, owner: str, at: datetime, *, closed: bool = False
) -> OpportunityChangedEvent:
    return make_event(
        OpportunityChangedEvent,
        id=_id("opp"),
        source="salesforce",
        occurred_at=at,
        payload=OpportunityChanged(
            opportunity_id=opp_id,
            change="created",
            account_id=account_id,
            owner_id=owner,
            is_closed=closed,
            created_at=at,
            close_date=at.date(),
            source_ref=sf("Opportunity", opp_id),
        ),
    )


def lead_status(email: str, lead_id: str, status: str, at: datetime) -> PersonChangedEvent:
    return make_event(
        PersonChangedEvent,
        id=_id("person"),
        source="salesforce",
        occurred_at=at,
        payload=PersonChanged(
            person_type="lead",
            change="updated",
            email=email,
            status=status,
            source_ref=sf("Lead", lead_id),
        ),
    )


def converted(
    lead_id: str, email: str, account_id: str, opp_id: str, at: datetime
) -> LeadConvertedEvent:
    return make_event(
        LeadConvertedEvent,
        id=_id("conv"),
        source="salesforce",
        occurred_at=at,
        payload=LeadConverted(
            lead_id=lead_id, account_id=account_id, opportunity_id=opp_id, email=email
        ),
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

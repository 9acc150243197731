"""Attribution against the real broker and Postgres: events in, API answers out.

`attribution_client` starts the whole service (consumer + API) on a module-unique topic
prefix and a freshly migrated `attribution` schema in `revops_test`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import httpx
import pytest

from revops.attribution.main import SPEC, build_app
from revops.attribution.settings import AttributionSettings
from revops.events.catalogue import (
    Envelope,
    FormSubmittedEvent,
    LeadConvertedEvent,
    OpportunityChangedEvent,
    PersonChangedEvent,
    SignupCreatedEvent,
)
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    form_submitted,
    fresh_schema,
    lead_converted,
    opportunity_changed,
    person_changed,
    running_app,
    service_settings,
    signup_created,
)

READ = {"Authorization": "Bearer dev-read-token"}

# Day 0 of every scenario: all times are days after it.
DAY0 = datetime(2026, 4, 1, 14, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def attribution_settings(kafka_settings: KafkaSettings) -> AttributionSettings:
    settings = service_settings(AttributionSettings, "attribution", kafka_settings.topic_prefix)
    assert isinstance(settings, AttributionSettings)
    return settings


@asynccontextmanager
async def running_service(settings: AttributionSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(
        build_app(settings), base_url="http://attribution", headers=READ
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def settings(kafka_settings: KafkaSettings) -> AttributionSettings:
    settings = attribution_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    return settings


@pytest.fixture(scope="module")
async def client(settings: AttributionSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_service(settings) as client:
        yield client


# --- events as ingest publishes them -----------------------------------------------------


def form(
    event_id: str,
    email: str,
    at: datetime,
    form_type: str,
    campaign_id: str | None,
    *,
    page_url: str | None = None,
    referrer: str | None = None,
) -> FormSubmittedEvent:
    return form_submitted(
        email,
        at,
        id=event_id,
        form_id=f"form-{form_type}",
        form_type=form_type,
        campaign_id=campaign_id,
        page_url=page_url,
        referrer=referrer,
    )


def signup(event_id: str, email: str, at: datetime, url: str | None = None) -> SignupCreatedEvent:
    return signup_created(email, at, id=event_id, first_source_url=url)


def person(
    event_id: str,
    email: str,
    at: datetime,
    *,
    object_id: str,
    lead_source: str | None = None,
    account_id: str | None = None,
    person_type: Literal["lead", "contact"] = "contact",
    change: Literal["created", "updated"] = "created",
) -> PersonChangedEvent:
    return person_changed(
        person_type,
        object_id,
        at,
        change=change,
        id=event_id,
        email=email,
        lead_source=lead_source,
        account_id=account_id,
    )


def conversion(
    event_id: str,
    at: datetime,
    *,
    lead_id: str,
    account_id: str,
    opportunity_id: str | None,
    email: str | None = None,
) -> LeadConvertedEvent:
    return lead_converted(
        lead_id,
        at,
        account_id=account_id,
        id=event_id,
        contact_id=f"003{lead_id[3:]}",
        opportunity_id=opportunity_id,
        email=email,
    )


def opportunity(
    event_id: str,
    at: datetime,
    *,
    opportunity_id: str,
    account_id: str,
    stage: str,
    amount: str | None = "10000",
    change: Literal["created", "updated"] = "created",
    lead_source: str | None = None,
    owner_id: str | None = None,
) -> OpportunityChangedEvent:
    return opportunity_changed(
        opportunity_id,
        at,
        change=change,
        id=event_id,
        account_id=account_id,
        stage=stage,
        amount=Decimal(amount) if amount else None,
        lead_source=lead_source,
        owner_id=owner_id,
    )


Unique = Callable[[str], str]


@pytest.fixture
def unique() -> Unique:
    """Names unique to one test, so the tests of a module share a service but not data:
    unique("jane") -> "jane-1a2b3c4d"."""
    tag = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{tag}"


@dataclass(frozen=True)
class OutboundStory:
    """An SDR prospects Bob at ACME; 30 days later his colleague Jane downloads an ebook
    and, 40 days after that, asks for a demo; she is converted into an opportunity."""

    jane: str
    bob: str
    carol: str
    account_id: str
    jane_lead_id: str
    opportunity_id: str
    events: list[Envelope]
    late_events: list[Envelope]


def outbound_story(unique: Unique) -> OutboundStory:
    jane, bob, carol = (f"{unique(name)}@acme.example" for name in ("jane", "bob", "carol"))
    account_id, lead_id, opportunity_id = unique("001ACME"), unique("00QJANE"), unique("006OPP")
    events: list[Envelope] = [
        person(
            unique("e1"),
            bob,
            day(-30),
            object_id=unique("003BOB"),
            lead_source="SDR Created",
            account_id=account_id,
        ),
        form(
            unique("e2"),
            jane,
            day(0),
            "ebook",
            "cmp-ebook",
            page_url="https://info.example.com/ebook?utm_source=google&utm_medium=cpc",
            referrer="https://www.google.com/",
        ),
        person(
            unique("e3"),
            jane,
            day(0) + timedelta(minutes=1),
            object_id=lead_id,
            lead_source="Inbound",
            person_type="lead",
        ),
        form(unique("e4"), bob, day(35), "webinar", "cmp-webinar"),
        form(unique("e5"), jane, day(40), "demo_request", "cmp-demo"),
        # The conversion names the lead by its Salesforce id only.
        conversion(
            unique("e6"),
            day(41),
            lead_id=lead_id,
            account_id=account_id,
            opportunity_id=opportunity_id,
        ),
        opportunity(
            unique("e7"),
            day(41),
            opportunity_id=opportunity_id,
            account_id=account_id,
            stage="1 - Interest",
            amount="50000",
        ),
    ]
    late_events: list[Envelope] = [
        # Happened before the opportunity, arrives after it.
        form(unique("e8"), jane, day(38), "contact", "cmp-contact"),
        # Another outbound contact, created after Jane: changes nothing.
        person(
            unique("e9"),
            carol,
            day(42),
            object_id=unique("003CAROL"),
            lead_source="AE Created",
            account_id=account_id,
        ),
        opportunity(
            unique("e10"),
            day(50),
            opportunity_id=opportunity_id,
            account_id=account_id,
            stage="2 - Qualified",
            change="updated",
            amount=None,
        ),
    ]
    return OutboundStory(jane, bob, carol, account_id, lead_id, opportunity_id, events, late_events)


@pytest.fixture
def story(unique: Unique) -> OutboundStory:
    return outbound_story(unique)


class Build:
    """The event builders, for test modules (conftest is not importable under
    --import-mode=importlib)."""

    day = staticmethod(day)
    form = staticmethod(form)
    signup = staticmethod(signup)
    person = staticmethod(person)
    conversion = staticmethod(conversion)
    opportunity = staticmethod(opportunity)
    running_service = staticmethod(running_service)


@pytest.fixture(scope="session")
def build() -> type[Build]:
    return Build

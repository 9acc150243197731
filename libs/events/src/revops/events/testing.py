"""Helpers for tests that run against the real Kafka broker and Postgres.

Tests find both from the same settings as the services. When either is missing the test
fails with a message that says how to start them (``make infra``): never a silent skip.
Each test session uses a unique topic prefix, so tests never read the demo's events or
another session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from revops.events import admin, migrations
from revops.events.catalogue import (
    AccountChanged,
    AccountChangedEvent,
    ActivityLogged,
    ActivityLoggedEvent,
    Envelope,
    Event,
    FormSubmitted,
    FormSubmittedEvent,
    LeadConverted,
    LeadConvertedEvent,
    Model,
    OpportunityChanged,
    OpportunityChangedEvent,
    PersonChanged,
    PersonChangedEvent,
    SignupCreated,
    SignupCreatedEvent,
    Source,
    SourceRef,
    make_event,
)
from revops.events.codec import decode_event
from revops.events.db import connect_args
from revops.events.producer import EventProducer
from revops.events.service import ServiceSpec
from revops.events.settings import KafkaSettings, ServiceSettings
from revops.events.topics import ALL_TOPICS

HOW_TO_START = (
    "start them with `make infra` (Kafka on 127.0.0.1:9092, Postgres on :5432), or run a "
    "container engine and the tests start both with testcontainers"
)

T = TypeVar("T")
S = TypeVar("S", bound=ServiceSettings)


class InfrastructureMissing(RuntimeError):
    pass


# Every prefix handed out in this process: the root conftest deletes their topics when the
# test session ends, so a fixture that forgets to cannot pile topics on the broker (a
# broker here had gathered 1,265 topics, and each one costs it work on every request).
USED_PREFIXES: set[str] = set()


def unique_prefix() -> str:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    USED_PREFIXES.add(prefix)
    return prefix


def database_url_for_tests(role: str) -> str:
    """The tests' database (``revops_test``, or ``REVOPS_TEST_DB``), as the service's role."""
    env = os.environ.get(f"TEST_{role.upper()}_DATABASE_URL")
    database = os.environ.get("REVOPS_TEST_DB", "revops_test")
    return env or f"postgresql+asyncpg://{role}:{role}@127.0.0.1:5432/{database}"


def service_settings(cls: type[S], service: str, prefix: str, **overrides: Any) -> S:
    values: dict[str, Any] = {
        "service_name": service,
        "topic_prefix": prefix,
        "database_url": database_url_for_tests(service),
        "consumer_poll_ms": 50,
        "consumer_session_timeout_ms": 6000,
    }
    values.update(overrides)
    return cls(**values)


def examples(full: int) -> int:
    """A property test's own example count, scaled like Hypothesis's default: ``full``
    under the default profile (100 examples), a tenth of it under `make unit`'s "fast"
    profile (10), never under 10."""
    from hypothesis import settings  # a test dependency, not a runtime one

    return max(10, full * settings().max_examples // 100)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_infrastructure(settings: KafkaSettings | None = None) -> None:
    """Raise with instructions if the broker or Postgres is not listening."""
    settings = settings or KafkaSettings()
    missing = []
    for server in settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not _reachable(host or "127.0.0.1", int(port)):
            missing.append(f"Kafka is not reachable at {server}")
    pg = urlsplit(database_url_for_tests("revops").replace("+asyncpg", ""))
    if not _reachable(pg.hostname or "127.0.0.1", pg.port or 5432):
        missing.append(f"Postgres is not reachable at {pg.hostname}:{pg.port}")
    if missing:
        raise InfrastructureMissing("; ".join(missing) + f": {HOW_TO_START}")


async def create_topics(settings: KafkaSettings) -> None:
    """Every topic of the prefix, each partition with a leader once this returns: a test
    that produced or read at once would otherwise meet a partition Kafka has not yet
    given one (a flaky failure on a busy machine)."""
    bootstrap, prefix = settings.kafka_bootstrap_servers, settings.topic_prefix
    await admin.ensure_topics(bootstrap, prefix, ALL_TOPICS)
    await admin.wait_for_leaders(bootstrap, admin.partition_counts(ALL_TOPICS, prefix))


async def delete_topics(settings: KafkaSettings) -> None:
    """Delete the topics of a test prefix, so test runs do not pile topics on the broker."""
    if settings.topic_prefix:
        await admin.delete_topics_with_prefix(
            settings.kafka_bootstrap_servers, settings.topic_prefix
        )


async def fresh_schema(spec: ServiceSpec, database_url: str) -> None:
    """Empty the service's schema in the test database and migrate it to head."""
    await migrations.drop_all(database_url, spec.name)
    await migrations.upgrade(database_url, spec.name, spec.migrations_dir)


class Explain(Executable, ClauseElement):
    """``EXPLAIN`` of a statement, with the statement's own parameters: what a plan test
    reads to show that a list's query uses its index, not the whole table."""

    inherit_cache = False

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)


async def plan_of(connection: AsyncConnection, statement: Any) -> str:
    """Postgres's plan of ``statement``, one line per node."""
    return "\n".join(row[0] for row in await connection.execute(Explain(statement)))


@contextlib.asynccontextmanager
async def seeded_database(
    spec: ServiceSpec, seeds: Sequence[Sequence[Any]], grown: Sequence[str]
) -> AsyncIterator[AsyncConnection]:
    """A connection to the service's schema, fresh, seeded by raw SQL (each of ``seeds``
    a statement and its arguments), with the ``grown`` tables vacuumed and analysed as
    autovacuum would do: statistics, and the visibility map that lets a count read an
    index alone."""
    url = database_url_for_tests(spec.name)
    await fresh_schema(spec, url)
    engine = create_async_engine(url, connect_args=connect_args(url, spec.name))
    try:
        raw = await engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            for statement, *arguments in seeds:
                await driver.execute(statement, *arguments)
            for table in grown:
                await driver.execute(f"VACUUM ANALYZE {spec.name}.{table}")
        finally:
            raw.close()
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def publish(settings: KafkaSettings, events: Sequence[Envelope]) -> None:
    producer = EventProducer(settings, client_id="tests")
    try:
        await producer.publish(events)
    finally:
        await producer.stop()


async def read_events(
    settings: KafkaSettings, topic_name: str, count: int, timeout_s: float = 15
) -> list[Event]:
    """Read ``count`` events from the start of a topic (fails if fewer arrive in time)."""
    return [
        decode_event(r.value) for r in await read_records(settings, topic_name, count, timeout_s)
    ]


async def read_records(
    settings: KafkaSettings, topic_name: str, count: int, timeout_s: float = 15
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    if len(records) < count:
        raise AssertionError(f"expected {count} records on {topic_name}, got {len(records)}")
    return records


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout_s: float = 20, interval_s: float = 0.1
) -> T:
    """Await ``check`` until it stops raising AssertionError (then return its value)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def running_app(
    app: FastAPI, *, base_url: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A service's whole app started in this process (its lifespan: consumer, relays) and
    an HTTP client that talks to it without a port; both stopped on the way out."""
    from asgi_lifespan import LifespanManager  # a test dependency, not a runtime one

    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, headers=dict(headers or {})
        ) as client:
            yield client


# --- events as ingest publishes them -------------------------------------------------------
# One factory a kind, for every service's tests: the business key and the moment first,
# then keyword fields of the payload, checked against it (the catalogue ignores unknown
# fields on purpose, so a misspelt one here would vanish without a word). Ids are unique
# unless given: a test that replays an event passes the same ``id`` again.


def new_event_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def salesforce_ref(object_type: str, object_id: str) -> SourceRef:
    return SourceRef(system="salesforce", object_type=object_type, object_id=object_id)


def form_submitted(
    email: str, at: datetime, *, id: str | None = None, **fields: Any
) -> FormSubmittedEvent:
    """A HubSpot form submission."""
    payload = _payload(FormSubmitted, email=email, **fields)
    return _event(FormSubmittedEvent, "form", id, "hubspot", at, payload)


def signup_created(
    email: str, at: datetime, *, id: str | None = None, **fields: Any
) -> SignupCreatedEvent:
    """A product sign-up (a cloud one, with a user id of its own, unless told)."""
    event_id = id or new_event_id("signup")
    fields = {"user_id": f"usr-{event_id}", "signup_type": "cloud", **fields}
    payload = _payload(SignupCreated, email=email, **fields)
    return _event(SignupCreatedEvent, "signup", event_id, "product", at, payload)


def person_changed(
    person_type: Literal["lead", "contact"],
    object_id: str,
    at: datetime,
    *,
    change: Literal["created", "updated", "deleted", "merged"],
    id: str | None = None,
    **fields: Any,
) -> PersonChangedEvent:
    """A Salesforce lead or contact; created at ``at`` when the change is its creation."""
    ref = salesforce_ref(person_type.title(), object_id)
    fields = {"created_at": at if change == "created" else None, **fields}
    payload = _payload(
        PersonChanged, person_type=person_type, change=change, source_ref=ref, **fields
    )
    return _event(PersonChangedEvent, "person", id, "salesforce", at, payload)


def lead_converted(
    lead_id: str, at: datetime, *, account_id: str, id: str | None = None, **fields: Any
) -> LeadConvertedEvent:
    """A Salesforce lead conversion (into an opportunity when ``opportunity_id`` is given)."""
    payload = _payload(LeadConverted, lead_id=lead_id, account_id=account_id, **fields)
    return _event(LeadConvertedEvent, "conversion", id, "salesforce", at, payload)


def account_changed(
    account_id: str,
    at: datetime,
    *,
    change: Literal["created", "updated", "deleted"],
    id: str | None = None,
    **fields: Any,
) -> AccountChangedEvent:
    """A Salesforce account."""
    ref = salesforce_ref("Account", account_id)
    payload = _payload(
        AccountChanged, account_id=account_id, change=change, source_ref=ref, **fields
    )
    return _event(AccountChangedEvent, "account", id, "salesforce", at, payload)


def opportunity_changed(
    opportunity_id: str,
    at: datetime,
    *,
    change: Literal["created", "updated", "deleted"],
    id: str | None = None,
    **fields: Any,
) -> OpportunityChangedEvent:
    """A Salesforce opportunity; created at ``at`` when the change is its creation."""
    ref = salesforce_ref("Opportunity", opportunity_id)
    fields = {"created_at": at if change == "created" else None, **fields}
    payload = _payload(
        OpportunityChanged,
        opportunity_id=opportunity_id,
        change=change,
        source_ref=ref,
        **fields,
    )
    return _event(OpportunityChangedEvent, "opportunity", id, "salesforce", at, payload)


def activity_logged(
    at: datetime,
    *,
    kind: Literal["email", "call", "meeting", "task", "other"],
    id: str | None = None,
    **fields: Any,
) -> ActivityLoggedEvent:
    """A Salesforce task (a call, an email, ...); the event's id is the activity's."""
    event_id = id or new_event_id("activity")
    ref = salesforce_ref("Task", event_id)
    payload = _payload(ActivityLogged, activity_id=event_id, kind=kind, source_ref=ref, **fields)
    return _event(ActivityLoggedEvent, "activity", event_id, "salesforce", at, payload)


P = TypeVar("P", bound=Model)
E = TypeVar("E", bound=Envelope)


def _payload(model: type[P], **fields: Any) -> P:
    unknown = sorted(set(fields) - set(model.model_fields))
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(unknown)}")
    return model(**fields)


def _event(
    event_class: type[E], kind: str, id: str | None, source: Source, at: datetime, payload: Model
) -> E:
    return make_event(
        event_class, id=id or new_event_id(kind), source=source, occurred_at=at, payload=payload
    )

"""The roster is an event stream: the reps API publishes ``rep.changed`` on the roster
topic, answers once Kafka acknowledged it, and the router applies it like other state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from revops.events import topics
from revops.events.catalogue import RepChanged, RepChangedEvent, make_event
from revops.events.codec import decode_event
from revops.events.settings import KafkaSettings
from revops.events.testing import publish, read_records
from revops.router import models as m
from revops.router.roster import REPS_CACHE, apply_rep_changes

from .conftest import router_settings, running_router
from .rep_helpers import create_reps, wait_for_rep
from .router_events import T0

pytestmark = pytest.mark.infra

FULL = {
    "id": "005FULL",
    "name": "Fay",
    "email": "fay@example.com",
    "role": "AE",
    "region": "EMEA",
    "certified": True,
    "consultant": True,
    "active": True,
    "paused": False,
    "out_of_office": False,
    "weight": 3,
    "daily_cap": 7,
    "paired_sdr_id": "005PAIR",
    "salesforce_user_id": "0055g00000ABCdeAAF",
    "hubspot_owner_id": "123456789",
    "working_hours": {
        "time_zone": "Europe/Paris",
        "shifts": [{"days": ["mon", "tue"], "start": "08:30", "end": "16:30"}],
        "holidays": [],
    },
}


async def roster_count(kafka_settings: KafkaSettings) -> int:
    """How many changes the roster topic holds (its one partition's end offset)."""
    partition = TopicPartition(topics.ROSTER.name(kafka_settings.topic_prefix), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()


async def roster_events(kafka_settings: KafkaSettings, count: int) -> list[RepChangedEvent]:
    name = topics.ROSTER.name(kafka_settings.topic_prefix)
    records = await read_records(kafka_settings, name, count)
    out = []
    for record in records:
        event = decode_event(record.value)
        assert isinstance(event, RepChangedEvent)
        assert record.key == event.payload.id.encode()
        out.append(event)
    return out


async def test_a_create_publishes_the_whole_rep_and_the_router_applies_it(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    before = await roster_count(kafka_settings)
    r = await client.post("/reps", json=FULL)
    assert r.status_code == 201, r.text
    # The answer is the rep as it will be; its place in the rotation is not known yet.
    assert r.json() == {**FULL, "position": None}
    [event] = (await roster_events(kafka_settings, before + 1))[before:]
    assert event.payload.change == "created" and event.source == "router"
    assert event.payload.model_dump(exclude={"change"}) == FULL
    applied = await wait_for_rep(client, "005FULL")
    assert isinstance(applied["position"], int)
    assert applied == {**FULL, "position": applied["position"]}


async def test_a_patch_publishes_the_merged_rep_and_keeps_its_place(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    await create_reps(client, [{"id": "005PATCH", "role": "SDR", "region": "AMER"}])
    position = (await wait_for_rep(client, "005PATCH"))["position"]
    before = await roster_count(kafka_settings)
    r = await client.patch(
        "/reps/005PATCH", json={"paused": True, "weight": 4, "hubspot_owner_id": "777"}
    )
    assert r.status_code == 200, r.text
    expected = {
        "id": "005PATCH",
        "name": "",
        "email": None,
        "role": "SDR",
        "region": "AMER",
        "certified": False,
        "consultant": False,
        "active": True,
        "paused": True,
        "out_of_office": False,
        "weight": 4,
        "daily_cap": None,
        "paired_sdr_id": None,
        "salesforce_user_id": None,
        "hubspot_owner_id": "777",
        "working_hours": None,
    }
    assert r.json() == {**expected, "position": position}
    [event] = (await roster_events(kafka_settings, before + 1))[before:]
    assert event.payload.change == "updated"
    assert event.payload.model_dump(exclude={"change"}) == expected
    await wait_for_rep(client, "005PATCH", paused=True, weight=4, position=position)
    # A CRM id can be cleared again.
    r = await client.patch("/reps/005PATCH", json={"hubspot_owner_id": None})
    assert r.status_code == 200 and r.json()["hubspot_owner_id"] is None
    await wait_for_rep(client, "005PATCH", hubspot_owner_id=None, paused=True)


async def test_refused_changes_publish_nothing(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    await create_reps(client, [{"id": "005TAKEN", "role": "AE"}])
    before = await roster_count(kafka_settings)
    r = await client.post("/reps", json={"id": "005TAKEN", "role": "SDR"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = await client.patch("/reps/005NOBODY", json={"paused": True})
    assert r.status_code == 404 and "005NOBODY" in r.json()["detail"]
    for field, value in (
        ("salesforce_user_id", "x" * 65),
        ("salesforce_user_id", "005 A"),
        ("hubspot_owner_id", ""),
        ("hubspot_owner_id", "12/34"),
    ):
        r = await client.post("/reps", json={"id": "005BAD", "role": "AE", field: value})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text
        r = await client.patch("/reps/005TAKEN", json={field: value})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text
    r = await client.post("/reps", json={"id": "005OK", "role": "AE", "hubspot_owner_id": "x" * 64})
    assert r.status_code == 201, r.text
    await wait_for_rep(client, "005OK", hubspot_owner_id="x" * 64)
    r = await client.patch("/reps/005TAKEN", json={"weight": None})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "weight"]
    # The one accepted create above, nothing else.
    assert await roster_count(kafka_settings) == before + 1


async def test_kafka_unreachable_is_503_and_nothing_changes(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    await create_reps(client, [{"id": "005STAY", "role": "SDR", "region": "APAC"}])
    settings = router_settings(
        kafka_settings,
        kafka_bootstrap_servers="127.0.0.1:1",  # nothing listens there
        kafka_publish_timeout_s=0.5,
        consumer_enabled=False,
        outbox_enabled=False,
    )
    async with running_router(settings) as cut_off:
        r = await cut_off.post("/reps", json={"id": "005LOST", "role": "SDR"})
        assert r.status_code == 503, r.text
        assert "Kafka did not acknowledge" in r.json()["detail"]
        assert r.headers["Retry-After"] == "1"
        r = await cut_off.patch("/reps/005STAY", json={"paused": True})
        assert r.status_code == 503, r.text
    # The running router never heard of either change.
    assert (await client.get("/reps/005LOST")).status_code == 404
    assert (await client.get("/reps/005STAY")).json()["paused"] is False


async def test_a_second_create_of_one_id_is_applied_as_an_update(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    """Two creates of one id within moments both pass the API's check and are both
    published: the later one on the topic wins, the rep keeps its first place."""
    first = RepChanged(change="created", id="005TWICE", role="SDR", name="first")
    second = RepChanged(change="created", id="005TWICE", role="AE", name="second", weight=2)
    await create_reps(client, [{"id": "005BEFORE", "role": "SDR"}])
    await publish(kafka_settings, [rep_event(first, 0)])
    position = (await wait_for_rep(client, "005TWICE", name="first"))["position"]
    await create_reps(client, [{"id": "005AFTER", "role": "SDR"}])
    await publish(kafka_settings, [rep_event(second, 1)])
    rep = await wait_for_rep(client, "005TWICE", name="second")
    assert (rep["role"], rep["weight"], rep["position"]) == ("AE", 2, position)
    r = await client.get("/reps", params={"limit": 500})
    ids = [x["id"] for x in r.json()["items"]]
    assert ids.index("005BEFORE") < ids.index("005TWICE") < ids.index("005AFTER")


def rep_event(rep: RepChanged, n: int) -> RepChangedEvent:
    return make_event(
        RepChangedEvent,
        id=f"test-{rep.id}-{n}",
        source="router",
        occurred_at=T0 + timedelta(minutes=n),
        payload=rep,
    )


@pytest.fixture
async def session(kafka_settings: KafkaSettings) -> AsyncIterator[AsyncSession]:
    """A transaction on the router's schema, rolled back at the end."""
    engine = create_async_engine(router_settings(kafka_settings).resolved_database_url())
    async with engine.connect() as conn:
        transaction = await conn.begin()
        yield AsyncSession(bind=conn)
        await transaction.rollback()
    await engine.dispose()


async def test_in_one_batch_the_newest_change_wins_and_the_first_creation_orders(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    session.info[REPS_CACHE] = ["stale"]
    x1 = RepChanged(change="created", id="005BX", role="SDR", weight=1)
    y = RepChanged(change="created", id="005BY", role="SDR")
    x2 = RepChanged(change="updated", id="005BX", role="SDR", weight=3, paused=True)
    z = RepChanged(change="created", id="005BZ", role="AE")
    events = [rep_event(x1, 0), rep_event(y, 1), rep_event(x2, 2), rep_event(z, 3)]
    await apply_rep_changes(session, events)
    rows = {
        r.id: r
        for r in await session.execute(
            select(m.reps).where(m.reps.c.id.in_(["005BX", "005BY", "005BZ"]))
        )
    }
    x = rows["005BX"]
    assert (x.weight, x.paused) == (3, True)
    assert (x.created_at, x.updated_at) == (T0, T0 + timedelta(minutes=2))
    assert x.position < rows["005BY"].position < rows["005BZ"].position
    # Whatever a batch loaded before is stale now.
    assert REPS_CACHE not in session.info
    # Applied again later: places and creation times kept, the values replaced.
    again = RepChanged(change="updated", id="005BZ", role="AE", name="Zed")
    await apply_rep_changes(session, [rep_event(again, 9)])
    z_row = (await session.execute(select(m.reps).where(m.reps.c.id == "005BZ"))).one()
    assert (z_row.name, z_row.position, z_row.created_at) == (
        "Zed",
        rows["005BZ"].position,
        T0 + timedelta(minutes=3),
    )
    assert z_row.updated_at == T0 + timedelta(minutes=9)


async def test_the_documents_say_when_a_change_shows(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for method, path in (("post", "/reps"), ("patch", "/reps/{rep_id}")):
        operation = doc["paths"][path][method]
        assert "moments" in operation["description"]
        assert "503" in operation["responses"]

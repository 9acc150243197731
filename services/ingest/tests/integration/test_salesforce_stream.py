"""The change-event stream against a local Pub/Sub API (real gRPC, Avro payloads) and the
real broker: events published exactly as the change-event webhook publishes them, the
replay id stored only after Kafka acknowledged and resumed from after a restart, a bad
event stopping the stream with a clear error and nothing of it published, and no more
events asked for than a batch until the previous batch is published."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from revops.events import admin, topics
from revops.events.catalogue import Envelope
from revops.events.codec import decode_event
from revops.events.crm import CredentialError
from revops.events.producer import EventProducer, KafkaUnavailable
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, eventually, read_records, unique_prefix
from revops.ingest.domain import salesforce
from revops.ingest.stream.command import StreamSettings, stream, stream_producer
from revops.ingest.stream.metrics import StreamMetrics
from revops.ingest.stream.proto import pubsub_api_pb2 as pb
from revops.ingest.stream.subscriber import BadStreamEvent, ReplayIds

from .fake_pubsub import (
    INSTANCE_URL,
    OPPORTUNITY_SCHEMA,
    OPPORTUNITY_SCHEMA_ID,
    ORG_ID,
    TOKEN,
    FakePubSub,
    bitmap,
    encode,
)

pytestmark = pytest.mark.infra

CHANNEL = "/data/OpportunityChangeEvent"
FORMATS = Path(__file__).parents[1] / "formats"


@pytest.fixture
async def kafka(infra: None) -> KafkaSettings:
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    return settings


@pytest.fixture
async def pubsub() -> AsyncIterator[FakePubSub]:
    fake = FakePubSub()
    await fake.start()
    yield fake
    await fake.stop()


def settings_for(
    fake: FakePubSub, kafka: KafkaSettings, state: Path, **extra: Any
) -> StreamSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka.kafka_bootstrap_servers,
        "topic_prefix": kafka.topic_prefix,
        "salesforce_pubsub_endpoint": fake.endpoint,
        "salesforce_pubsub_tls": False,
        "salesforce_access_token": SecretStr(TOKEN),
        "salesforce_instance_url": INSTANCE_URL,
        "salesforce_org_id": ORG_ID,
        "salesforce_cdc_topics": [CHANNEL],
        "salesforce_stream_state_file": state,
        "salesforce_stream_start": "earliest",
    }
    values.update(extra)
    return StreamSettings(**values)


def stored(settings: StreamSettings) -> bytes | None:
    scope = f"salesforce-stream {INSTANCE_URL}"
    return ReplayIds(settings.salesforce_stream_state_file, scope).get(CHANNEL)


async def published(kafka: KafkaSettings) -> list[Any]:
    name = topics.OPPORTUNITIES.name(kafka.topic_prefix)
    lags = await admin.group_lag(kafka.kafka_bootstrap_servers, "nobody", [name])
    count = sum(p.end for p in lags)
    return [decode_event(r.value) for r in await read_records(kafka, name, count)] if count else []


async def run_until_stored(settings: StreamSettings, replay_id: bytes, **kw: Any) -> None:
    """Follow the channel until the replay id is stored, then stop (as SIGTERM would)."""
    task = asyncio.create_task(stream(settings, **kw))

    async def reached() -> None:
        assert not task.done() or task.result() is None
        assert stored(settings) == replay_id

    try:
        await eventually(reached, timeout_s=20, interval_s=0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def avro_of(message: dict[str, Any]) -> bytes:
    """The CometD sample's event as Salesforce's Pub/Sub API carries it: every field of
    the schema (null when not sent), field names as bitmaps, times as epoch ms."""
    payload = dict(message["data"]["payload"])
    header = dict(payload.pop("ChangeEventHeader"))
    changed = header.pop("changedFields")
    header.update(
        changedFields=[bitmap(OPPORTUNITY_SCHEMA, changed)] if changed else [],
        nulledFields=[],
        diffFields=[],
    )
    record: dict[str, Any] = {"ChangeEventHeader": header}
    for name, value in payload.items():
        if name == "CreatedDate":
            value = _ms(value)
        elif name == "LastModifiedDate":
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif name == "CloseDate":
            value = date.fromisoformat(value)
        record[name] = value
    return encode(OPPORTUNITY_SCHEMA, record)


def opportunity_change(serial: int, stage: str) -> bytes:
    header = {
        "entityName": "Opportunity",
        "recordIds": ["0065g00000XyZ12AAF"],
        "changeType": "UPDATE",
        "changeOrigin": "",
        "transactionKey": f"tx-{serial}",
        "sequenceNumber": 1,
        "commitTimestamp": 1719590400000 + serial,
        "commitNumber": serial,
        "commitUser": "0055g00000Ab1CdAAJ",
        "nulledFields": [],
        "diffFields": [],
        "changedFields": [bitmap(OPPORTUNITY_SCHEMA, ["StageName"])],
    }
    return encode(OPPORTUNITY_SCHEMA, {"ChangeEventHeader": header, "StageName": stage})


def comparable(event: Any) -> tuple[str, str, datetime, dict[str, Any]]:
    return (event.id, event.type, event.occurred_at, event.payload.model_dump())


async def test_change_events_are_published_as_the_webhook_publishes_them(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path
) -> None:
    sample = json.loads((FORMATS / "sfdc_cdc_opportunity.json").read_text())
    replay_ids = [
        await pubsub.append(CHANNEL, avro_of(message), OPPORTUNITY_SCHEMA_ID) for message in sample
    ]
    settings = settings_for(pubsub, kafka, tmp_path / "replay.json")

    await run_until_stored(settings, replay_ids[-1])

    webhook = salesforce.parse_stream_events(
        sample, custom=settings.salesforce_custom_fields(), received_at=datetime.now(UTC)
    )
    # The two carry different partition keys (the update names no account), so they may
    # be read in either order: compared in time order.
    events = sorted(await published(kafka), key=lambda e: e.occurred_at)
    assert [comparable(e) for e in events] == [comparable(e) for e in webhook]
    closed = events[1].payload
    assert (closed.stage, closed.is_won, closed.changed_fields[0]) == (
        "Closed Won",
        True,
        "StageName",
    )
    assert events[0].payload.close_date == date(2024, 6, 28)
    assert pubsub.schema_requests == 1  # fetched once, then from the cache


async def test_a_restart_resumes_after_the_stored_replay_id(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path
) -> None:
    settings = settings_for(pubsub, kafka, tmp_path / "replay.json", salesforce_stream_batch=2)
    first = [
        await pubsub.append(CHANNEL, opportunity_change(i, f"Stage {i}"), OPPORTUNITY_SCHEMA_ID)
        for i in range(3)
    ]
    await run_until_stored(settings, first[-1])
    later = [
        await pubsub.append(CHANNEL, opportunity_change(i, f"Stage {i}"), OPPORTUNITY_SCHEMA_ID)
        for i in range(3, 5)
    ]
    await run_until_stored(settings, later[-1])

    # A subscription's first request names the channel and where to start.
    subscriptions = [r for r in pubsub.fetch_requests if r.topic_name == CHANNEL]
    assert [r.replay_preset for r in subscriptions] == [pb.EARLIEST, pb.CUSTOM]
    assert subscriptions[1].replay_id == first[-1]
    assert subscriptions[1].num_requested == 2
    stages = [e.payload.stage for e in await published(kafka)]
    assert stages == [f"Stage {i}" for i in range(5)]  # each once, in order


async def test_a_bad_event_stops_the_stream_with_a_clear_error_and_publishes_nothing(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path
) -> None:
    bad = await pubsub.append(CHANNEL, b"\x02\x0bnot avro at all", OPPORTUNITY_SCHEMA_ID)
    good = await pubsub.append(CHANNEL, opportunity_change(1, "Won"), OPPORTUNITY_SCHEMA_ID)
    settings = settings_for(pubsub, kafka, tmp_path / "replay.json")

    with pytest.raises(ExceptionGroup) as stopped:
        await asyncio.wait_for(stream(settings), 20)
    (error,) = stopped.value.exceptions
    assert isinstance(error, BadStreamEvent)
    assert CHANNEL in str(error) and bad.hex() in str(error)
    assert f"schema {OPPORTUNITY_SCHEMA_ID}" in str(error)
    assert await published(kafka) == []
    assert stored(settings) is None  # a restart reads the bad event again

    # Told to pass bad events over, the stream goes on after it.
    await run_until_stored(settings.model_copy(update={"salesforce_stream_skip_bad": True}), good)
    assert [e.payload.stage for e in await published(kafka)] == ["Won"]


class Recorded:
    """The real producer, with each publish call written into a shared log."""

    def __init__(self, producer: EventProducer, log: list[tuple[str, int]]) -> None:
        self.producer = producer
        self.log = log

    async def publish(self, events: Sequence[Envelope]) -> None:
        await self.producer.publish(events)
        self.log.append(("published", len(events)))


async def test_no_more_than_a_batch_is_asked_for_until_the_batch_is_published(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path
) -> None:
    log: list[tuple[str, int]] = []
    pubsub.on_fetch = lambda request: log.append(("asked", request.num_requested))
    replay_ids = [
        await pubsub.append(CHANNEL, opportunity_change(i, f"S{i}"), OPPORTUNITY_SCHEMA_ID)
        for i in range(5)
    ]
    settings = settings_for(pubsub, kafka, tmp_path / "replay.json", salesforce_stream_batch=2)
    producer = stream_producer(settings)
    try:
        task = asyncio.create_task(stream(settings, publisher=Recorded(producer, log)))

        async def all_published() -> None:
            assert stored(settings) == replay_ids[-1]

        await eventually(all_published, interval_s=0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await producer.stop()
    assert log == [
        ("asked", 2),
        ("published", 2),
        ("asked", 2),
        ("published", 2),
        ("asked", 2),
        ("published", 1),
    ]
    assert len(await published(kafka)) == 5


async def test_a_refused_token_is_one_clear_line(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path
) -> None:
    settings = settings_for(
        pubsub, kafka, tmp_path / "replay.json", salesforce_access_token=SecretStr("expired")
    )
    with pytest.raises(ExceptionGroup) as stopped:
        await asyncio.wait_for(stream(settings), 20)
    (error,) = stopped.value.exceptions
    assert isinstance(error, CredentialError)
    assert "SALESFORCE_ACCESS_TOKEN" in str(error)


class Crash(Exception):
    """The process dying after Kafka acknowledged a batch, before its replay id is kept."""


class CrashingPublisher:
    def __init__(self, producer: EventProducer, rng: random.Random) -> None:
        self.producer = producer
        self.rng = rng
        self.crashes = 0  # batches acknowledged, then lost with the process

    async def publish(self, events: Sequence[Envelope]) -> None:
        await self.producer.publish(events)
        if self.rng.random() < 0.3:
            self.crashes += 1
            raise Crash(f"after {len(events)} acknowledged events")


@pytest.mark.parametrize("seed", range(4))
async def test_crashes_between_acknowledgement_and_replay_id_lose_nothing(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path, seed: int
) -> None:
    """Restarted after every crash, the stream ends with every event on Kafka; the only
    repeats are whole batches acknowledged but not recorded, with the same event ids."""
    rng = random.Random(seed)
    replay_ids = [
        await pubsub.append(CHANNEL, opportunity_change(i, f"S{i}"), OPPORTUNITY_SCHEMA_ID)
        for i in range(24)
    ]
    settings = settings_for(pubsub, kafka, tmp_path / "replay.json", salesforce_stream_batch=4)
    producer = stream_producer(settings)
    publisher = CrashingPublisher(producer, rng)
    repeated = 0
    try:
        for _ in range(40):
            before = stored(settings)
            task = asyncio.create_task(stream(settings, publisher=publisher))

            async def finished_or_crashed(task: asyncio.Task[None] = task) -> None:
                assert task.done() or stored(settings) == replay_ids[-1]

            await eventually(finished_or_crashed, interval_s=0.02)
            task.cancel()
            outcome = (await asyncio.gather(task, return_exceptions=True))[0]
            if isinstance(outcome, ExceptionGroup):
                assert all(isinstance(e, Crash) for e in outcome.exceptions), outcome
                repeated += 1
                assert stored(settings) == before or stored(settings) in replay_ids
            if stored(settings) == replay_ids[-1]:
                break
    finally:
        await producer.stop()
    assert stored(settings) == replay_ids[-1]
    events = await published(kafka)
    stages = [e.payload.stage for e in events]
    assert sorted(set(stages), key=lambda s: int(s[1:])) == [f"S{i}" for i in range(24)]
    assert len({e.id for e in events}) == 24  # a repeat carries its event's id
    assert repeated == publisher.crashes >= 1
    # Each crash repeats its batch once: the repeats are exactly the lost acknowledgements.
    assert len(events) - 24 <= 4 * publisher.crashes


class KafkaDownOnce:
    """The real producer, after one batch Kafka did not acknowledge in time."""

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer
        self.refused = 0

    async def publish(self, events: Sequence[Envelope]) -> None:
        if not self.refused:
            self.refused += 1
            raise KafkaUnavailable(f"Kafka did not acknowledge {len(events)} event(s) (test)")
        await self.producer.publish(events)


async def test_the_metrics_count_events_resubscriptions_and_their_reasons(
    pubsub: FakePubSub, kafka: KafkaSettings, tmp_path: Path
) -> None:
    replay_ids = [
        await pubsub.append(CHANNEL, opportunity_change(i, f"S{i}"), OPPORTUNITY_SCHEMA_ID)
        for i in range(3)
    ]
    settings = settings_for(pubsub, kafka, tmp_path / "replay.json", salesforce_stream_batch=2)
    registry = CollectorRegistry()
    producer = stream_producer(settings)
    try:
        await run_until_stored(
            settings,
            replay_ids[-1],
            publisher=KafkaDownOnce(producer),
            metrics=StreamMetrics(registry),
        )
    finally:
        await producer.stop()

    def value(name: str, **labels: str) -> float | None:
        sample = f"revops_salesforce_stream_{name}"
        return registry.get_sample_value(sample, {"channel": CHANNEL, **labels})

    # The first batch of two was refused by Kafka, then read again after resubscribing.
    assert value("events_received_total") == 2 + 3
    assert value("events_published_total") == 3
    assert value("reconnects_total") == 1
    assert value("errors_total", reason="kafka") == 1
    assert value("errors_total", reason="stream") is None
    age = value("replay_id_age_seconds")
    assert age is not None and 0 <= age < 30

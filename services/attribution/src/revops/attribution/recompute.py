"""Rebuild attribution's schema from the topics: for when the configuration changes
(a touchpoint mapping, a window) and history must be decided again under it.

Empties the schema, moves the service's consumer group back to the start of its
topics, and consumes them all in this process with the service's own runner and
handlers -- the same code path as the live service, so a recompute gives the same
answers as the live run. Stop every instance of the service first: the group must have
no other member while it is reset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select

from revops.attribution import models
from revops.attribution.consumer import make_batch_handler, make_handler
from revops.attribution.settings import AttributionSettings
from revops.events import migrations
from revops.events.consumer import ConsumerRunner
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.service import ServiceSpec

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class RecomputeResult:
    events: int
    people: int
    opportunities: int
    influence_rows: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def topic_partitions(bootstrap: str, names: Sequence[str]) -> list[TopicPartition]:
    # Asked of the admin client: a fresh consumer knows no topic's partitions until its
    # metadata is refreshed, so partitions_for_topic() would answer None.
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await client.start()
    try:
        described = await client.describe_topics(list(names))
    finally:
        await client.close()
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    )


@dataclass(frozen=True)
class ConsumerGroup:
    bootstrap: str
    group_id: str
    partitions: list[TopicPartition]

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, enable_auto_commit=False
        )

    async def reset_to_start(self) -> int:
        """Commit the earliest offsets (the group must have no live member); returns how
        many records there are to read again."""
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(self.partitions)
            starts = await consumer.beginning_offsets(self.partitions)
            ends = await consumer.end_offsets(self.partitions)
            if self.partitions:
                await consumer.commit(dict(starts))
            return sum(ends[tp] - starts[tp] for tp in self.partitions)
        finally:
            await consumer.stop()

    async def remaining(self) -> int:
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(self.partitions)
            ends = await consumer.end_offsets(self.partitions)
            remaining = 0
            for tp in self.partitions:
                committed = await consumer.committed(tp)
                remaining += ends[tp] - (committed or 0)
            return remaining
        finally:
            await consumer.stop()


async def _counts(database: Database) -> tuple[int, int, int]:
    async with database.transaction() as session:
        counts = []
        for table in (models.people, models.opportunities, models.opportunity_influence):
            counts.append(
                (await session.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return counts[0], counts[1], counts[2]


async def recompute(
    settings: AttributionSettings,
    spec: ServiceSpec,
    *,
    progress: Progress | None = None,
    poll_s: float = 0.5,
) -> RecomputeResult:
    url = settings.resolved_database_url()
    started = time.perf_counter()
    await migrations.drop_all(url, spec.name)
    await migrations.upgrade(url, spec.name, spec.migrations_dir)
    names = [t.name(settings.topic_prefix) for t in spec.topics]
    group = ConsumerGroup(
        settings.kafka_bootstrap_servers,
        f"{settings.topic_prefix}{settings.service_name}",
        await topic_partitions(settings.kafka_bootstrap_servers, names),
    )
    total = await group.reset_to_start()
    database = Database(url, spec.name, pool_size=settings.db_pool_size)
    producer = EventProducer(settings, client_id=f"{spec.name}-recompute")
    runner = ConsumerRunner(
        settings=settings,
        database=database,
        inbox=spec.inbox,
        topics=spec.topics,
        handle=make_handler(settings),
        handle_batch=make_batch_handler(settings),
        producer=producer,
    )
    task = asyncio.create_task(runner.run(), name="recompute-consumer")
    try:
        while True:
            remaining = await group.remaining()
            if progress is not None:
                progress(max(0, total - remaining), total)
            if remaining <= 0:
                break
            if task.done():
                task.result()  # re-raise why the consumer stopped
                raise RuntimeError("the consumer stopped before the topics were consumed")
            await asyncio.sleep(poll_s)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 60)
        await producer.stop()
    people, opportunities, influence_rows = await _counts(database)
    await database.dispose()
    return RecomputeResult(
        events=total,
        people=people,
        opportunities=opportunities,
        influence_rows=influence_rows,
        seconds=time.perf_counter() - started,
    )

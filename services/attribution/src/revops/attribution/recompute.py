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
from collections.abc import Callable
from dataclasses import dataclass

from revops.attribution import models
from revops.attribution.consumer import make_handler
from revops.attribution.settings import AttributionSettings
from revops.events import admin, migrations
from revops.events.consumer import ConsumerRunner
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.service import ServiceSpec
from sqlalchemy import func, select

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


async def _remaining(settings: AttributionSettings, spec: ServiceSpec) -> int:
    names = [t.name(settings.topic_prefix) for t in spec.topics]
    group = f"{settings.topic_prefix}{settings.service_name}"
    rows = await admin.group_lag(settings.kafka_bootstrap_servers, group, names)
    return sum(row.lag for row in rows)


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
    group = f"{settings.topic_prefix}{settings.service_name}"
    total = await admin.reset_group_to_start(settings.kafka_bootstrap_servers, group, names)
    database = Database(url, spec.name, pool_size=settings.db_pool_size)
    producer = EventProducer(settings, client_id=f"{spec.name}-recompute")
    runner = ConsumerRunner(
        settings=settings,
        database=database,
        inbox=spec.inbox,
        topics=spec.topics,
        handle=make_handler(settings),
        producer=producer,
    )
    task = asyncio.create_task(runner.run(), name="recompute-consumer")
    try:
        while True:
            remaining = await _remaining(settings, spec)
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

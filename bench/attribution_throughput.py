"""Attribution throughput: events/s applied with their writes, beside the raw consume rate
of the same events in the same run.

    uv run --frozen --group bench python bench/attribution_throughput.py --events 100000
    ... --recompute        also time `revops-attribution recompute` over the same topics
    ... --recompute-only   only the recompute (a large count without the consume before it)

Publishes a realistic mix (forms, sign-ups, CRM people, conversions, opportunities over
accounts of a few people each) under a unique topic prefix, then
  (a) reads them all with a bare AIOKafkaConsumer (decode nothing: the broker's and the
      client's ceiling), and
  (b) applies them all with attribution's own ConsumerRunner and handlers into a fresh
      `attribution` schema of `revops_test` (or $REVOPS_TEST_DB) (inbox, facts, every
      decision recomputed), in the service's batches unless --batch says otherwise,
and prints both rates, their ratio, this process's CPU time and the load average around
each timing; JSON goes to bench/results/attribution_throughput.json.
Needs `make infra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select

from revops.attribution import models
from revops.attribution.consumer import make_batch_handler, make_handler
from revops.attribution.main import SPEC
from revops.attribution.recompute import ConsumerGroup, recompute, topic_partitions
from revops.attribution.settings import AttributionSettings
from revops.attribution.simulate import generate
from revops.events import admin
from revops.events.catalogue import (
    Envelope,
)
from revops.events.consumer import ConsumerRunner
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.testing import fresh_schema, service_settings, unique_prefix


async def publish_all(settings: AttributionSettings, events: list[Envelope]) -> float:
    producer = EventProducer(settings.model_copy(update={"kafka_publish_timeout_s": 60}))
    started = time.perf_counter()
    try:
        for start in range(0, len(events), 1000):
            await producer.publish(events[start : start + 1000])
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(settings: AttributionSettings, count: int) -> float:
    names = [t.name(settings.topic_prefix) for t in SPEC.topics]
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    try:
        started = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def attribution_consume(settings: AttributionSettings, count: int) -> float:
    await fresh_schema(SPEC, settings.resolved_database_url())
    database = Database(settings.resolved_database_url(), SPEC.name)
    producer = EventProducer(settings)
    handle = make_handler(settings)
    runner = ConsumerRunner(
        settings=settings,
        database=database,
        inbox=SPEC.inbox,
        topics=SPEC.topics,
        handle=handle,
        handle_batch=make_batch_handler(settings),
        producer=producer,
    )
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    names = [t.name(settings.topic_prefix) for t in SPEC.topics]
    group = ConsumerGroup(
        settings.kafka_bootstrap_servers,
        f"{settings.topic_prefix}{settings.service_name}",
        await topic_partitions(settings.kafka_bootstrap_servers, names),
    )
    try:
        while True:
            await asyncio.sleep(0.25)
            if await group.remaining() == 0:
                break
            if task.done():
                task.result()
        elapsed = time.perf_counter() - started
    finally:
        runner.stop()
        await task
        await producer.stop()
    async with database.transaction() as session:
        applied = (await session.execute(select(func.count()).select_from(SPEC.inbox))).scalar()
        people = (await session.execute(select(func.count()).select_from(models.people))).scalar()
        decided = (
            await session.execute(
                select(func.count())
                .select_from(models.opportunities)
                .where(models.opportunities.c.source_rule.is_not(None))
            )
        ).scalar()
    await database.dispose()
    print(f"  applied {applied} events; {people} people, {decided} opportunities decided")
    if applied != count:
        raise SystemExit(f"expected {count} applied events, the inbox holds {applied}")
    return elapsed


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=AttributionSettings.model_fields["consumer_batch_max"].default,
        help="consumer batch size (default: the service's)",
    )
    parser.add_argument("--out", default="bench/results/attribution_throughput.json")
    parser.add_argument("--recompute", action="store_true", help="also time the recompute")
    parser.add_argument(
        "--recompute-only", action="store_true", help="time the recompute, not the consume"
    )
    parser.add_argument("--keep-topics", action="store_true")
    args = parser.parse_args()

    settings = service_settings(
        AttributionSettings,
        "attribution",
        unique_prefix(),
        consumer_batch_max=args.batch,
        kafka_linger_ms=20,
    )
    assert isinstance(settings, AttributionSettings)
    await admin.ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix, SPEC.topics)
    events = generate(args.events)
    print(f"publishing {len(events)} events under prefix {settings.topic_prefix!r} ...")
    publish_s = await publish_all(settings, events)
    print(f"  published in {publish_s:.1f} s ({len(events) / publish_s:,.0f} events/s)")

    raw_s = await raw_consume(settings, len(events))
    raw_rate = len(events) / raw_s
    print(f"raw aiokafka consume:   {raw_rate:>10,.0f} events/s ({raw_s:.2f} s)")
    rate = cpu_s = load_before = None
    if not args.recompute_only:
        load_before = os.getloadavg()[0]
        cpu_started = time.process_time()
        attribution_s = await attribution_consume(settings, len(events))
        cpu_s = time.process_time() - cpu_started
        rate = len(events) / attribution_s
        print(
            f"attribution with writes:{rate:>10,.0f} events/s ({attribution_s:.2f} s; "
            f"this process {cpu_s:.1f} s of CPU; load average {load_before:.2f} -> "
            f"{os.getloadavg()[0]:.2f})"
        )
        print(f"ratio: {rate / raw_rate:.1%} of raw")
    recompute_s = recompute_load = None
    if args.recompute or args.recompute_only:
        # The recompute command's own code path: empty the schema, reset the group, consume.
        recompute_load = os.getloadavg()[0]
        recompute_s = (await recompute(settings, SPEC)).seconds
        print(
            f"recompute command:      {len(events) / recompute_s:>10,.0f} events/s "
            f"({recompute_s:.1f} s; load average {recompute_load:.2f} -> "
            f"{os.getloadavg()[0]:.2f})"
        )
    if not args.keep_topics:
        await admin.delete_topics_with_prefix(
            settings.kafka_bootstrap_servers, settings.topic_prefix
        )

    result: dict[str, Any] = {
        "bench": "attribution_throughput",
        "events": len(events),
        "consumer_batch_max": args.batch,
        "raw_events_per_s": round(raw_rate),
        "attribution_events_per_s": round(rate) if rate else None,
        "ratio": round(rate / raw_rate, 4) if rate else None,
        "raw_seconds": round(raw_s, 3),
        "attribution_seconds": round(len(events) / rate, 3) if rate else None,
        "attribution_cpu_seconds": round(cpu_s, 1) if cpu_s else None,
        "load_average_1m_before": load_before,
        "publish_events_per_s": round(len(events) / publish_s),
        "recompute_seconds": round(recompute_s, 1) if recompute_s else None,
        "recompute_load_average_1m_before": recompute_load,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "run_at": datetime.now(UTC).isoformat(),
        "out": args.out,
    }
    return result


if __name__ == "__main__":
    figures = asyncio.run(main())
    out = Path(figures.pop("out"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")

"""Renewals throughput: stage changes/s applied with their writes (history, latest state,
renewals, outbox), beside the raw consume rate of the same events in the same run; and a
forecast snapshot over a large history, timed.

    uv run python bench/renewals_throughput.py --events 100000
    uv run python bench/renewals_throughput.py --events 100000 --snapshot-opps 100000 \
        --snapshot-changes 1000000

Part 1 publishes ``--events`` opportunity stage changes (deals of ~8 changes each moving
through the stages, some going back, a third won -> renewals, a quarter lost) under a
unique topic prefix, then (a) reads them all with a bare AIOKafkaConsumer and (b) applies
them all with renewals' ConsumerRunner and batch handler into a fresh ``renewals`` schema
of ``revops_test``. Part 2 loads ``--snapshot-changes`` history rows over
``--snapshot-opps`` opportunities straight into the tables (COPY), then times
``store_snapshot`` (the as-of query, the aggregation, the insert) as of a moment in the
middle of the history. JSON goes to bench/results/renewals_throughput.json. Needs
`make infra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select

from revops.events import admin
from revops.events.catalogue import (
    Envelope,
    OpportunityChanged,
    OpportunityChangedEvent,
    SourceRef,
    make_event,
)
from revops.events.consumer import ConsumerRunner
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.testing import fresh_schema, service_settings, unique_prefix
from revops.renewals import models
from revops.renewals.consumer import make_handlers
from revops.renewals.forecast import store_snapshot
from revops.renewals.main import SPEC
from revops.renewals.settings import RenewalsSettings

STAGES = ["0 - Prospecting", "1 - Interest", "2 - Qualified", "3 - Proposal", "4 - Negotiation"]
START = datetime(2026, 1, 5, 16, tzinfo=UTC)


def deal_path(rng: random.Random, length: int) -> list[str]:
    """A deal's stage names: forward mostly, sometimes back, ending won/lost/open."""
    path, level = [], rng.choice([0, 1, 1, 2])
    for _ in range(length - 1):
        path.append(STAGES[level])
        level = max(0, min(len(STAGES) - 1, level + rng.choice([1, 1, 1, 0, -1])))
    end = rng.random()
    path.append("Closed Won" if end < 0.33 else "Closed Lost" if end < 0.58 else STAGES[level])
    return path


def generate(count: int, seed: int = 7) -> list[Envelope]:
    rng = random.Random(seed)
    events: list[Envelope] = []
    opp = 0
    while len(events) < count:
        opp += 1
        opp_id, account_id = f"006B{opp:08d}", f"001B{opp // 3:07d}"
        at = START + timedelta(hours=rng.randrange(0, 24 * 120))
        for i, stage in enumerate(deal_path(rng, rng.randint(4, 12))):
            first = i == 0
            events.append(
                make_event(
                    OpportunityChangedEvent,
                    id=f"bench-{opp_id}-{i}",
                    source="salesforce",
                    occurred_at=at,
                    payload=OpportunityChanged(
                        opportunity_id=opp_id,
                        change="created" if first else "updated",
                        source_ref=SourceRef(
                            system="salesforce", object_type="Opportunity", object_id=opp_id
                        ),
                        account_id=account_id,
                        stage=stage,
                        amount=Decimal(rng.randrange(1, 200) * 500) if first else None,
                        owner_id=f"005R{opp % 40:03d}" if first else None,
                        opportunity_type="New Business" if first else None,
                        created_at=at if first else None,
                    ),
                )
            )
            at += timedelta(hours=rng.randrange(2, 24 * 10))
    # Deliver as Kafka would: per account in order, accounts interleaved.
    return events[:count]


async def publish_all(settings: RenewalsSettings, events: list[Envelope]) -> float:
    producer = EventProducer(settings.model_copy(update={"kafka_publish_timeout_s": 60}))
    started = time.perf_counter()
    try:
        for start in range(0, len(events), 5000):
            await producer.publish(events[start : start + 5000])
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(settings: RenewalsSettings, count: int) -> float:
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


async def renewals_consume(settings: RenewalsSettings, count: int) -> tuple[float, dict[str, int]]:
    await fresh_schema(SPEC, settings.resolved_database_url())
    database = Database(settings.resolved_database_url(), SPEC.name)
    producer = EventProducer(settings)
    handle, handle_batch = make_handlers(settings)
    runner = ConsumerRunner(
        settings=settings,
        database=database,
        inbox=SPEC.inbox,
        topics=SPEC.topics,
        handle=handle,
        handle_batch=handle_batch,
        producer=producer,
    )
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    try:
        # Done when the inbox holds every event: a cheap count, not a Kafka client per poll.
        while True:
            await asyncio.sleep(0.2)
            async with database.transaction() as session:
                applied = (
                    await session.execute(select(func.count()).select_from(SPEC.inbox))
                ).scalar()
            if applied == count:
                break
            if task.done():
                task.result()
        elapsed = time.perf_counter() - started
    finally:
        runner.stop()
        await task
        await producer.stop()
    counts = {}
    async with database.transaction() as session:
        for name, table in (
            ("inbox", SPEC.inbox),
            ("history", models.opportunity_history),
            ("opportunities", models.opportunities),
            ("renewals", models.renewals),
            ("outbox", SPEC.outbox),
        ):
            counts[name] = int(
                (await session.execute(select(func.count()).select_from(table))).scalar() or 0
            )
    await database.dispose()
    print(f"  applied: {counts}")
    if counts["inbox"] != count:
        raise SystemExit(f"expected {count} applied events, the inbox holds {counts['inbox']}")
    return elapsed, counts


async def load_history(settings: RenewalsSettings, opps: int, changes: int) -> datetime:
    """History rows straight into the tables (COPY); returns the middle of the history."""
    await fresh_schema(SPEC, settings.resolved_database_url())
    rng = random.Random(11)
    per_opp = max(1, changes // opps)
    history: list[tuple[Any, ...]] = []
    latest: list[tuple[Any, ...]] = []
    orders = {name: i for i, name in enumerate(STAGES)}
    for n in range(opps):
        opp_id = f"006S{n:08d}"
        owner = f"005R{n % 60:03d}"
        amount = Decimal(rng.randrange(1, 200) * 500)
        at = START + timedelta(hours=rng.randrange(0, 24 * 300))
        nbm = qualified = closed = None
        path = deal_path(rng, per_opp)
        for i, stage in enumerate(path):
            step = timedelta(hours=rng.randrange(2, 24 * 14))
            kind = "won" if stage == "Closed Won" else "lost" if stage == "Closed Lost" else "open"
            order = orders.get(stage)
            if nbm is None and (kind == "won" or (order or 0) >= 1):
                nbm = at
            if qualified is None and (kind == "won" or (order or 0) >= 2):
                qualified = at
            closed = at if kind != "open" else None
            category = "Closed" if kind == "won" else "Omitted" if kind == "lost" else "Pipeline"
            history.append(
                (
                    f"h{n}-{i}",
                    opp_id,
                    at,
                    None if i == len(path) - 1 else at + step,
                    json.dumps({"stage": stage}),
                    stage,
                    order,
                    kind,
                    amount,
                    category,
                    owner,
                    "001X",
                    closed,
                    False,
                )
            )
            last_at = at
            at += step
        latest.append(
            (
                opp_id,
                last_at,
                f"h{n}-{len(path) - 1}",
                owner,
                path[-1],
                kind,
                amount,
                category,
                closed,
                nbm,
                qualified,
                False,
            )
        )
    dsn = settings.resolved_database_url().replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "renewals"})
    try:
        await conn.copy_records_to_table(
            "opportunity_history",
            records=history,
            columns=[
                "event_id",
                "opportunity_id",
                "at",
                "valid_to",
                "change",
                "stage",
                "stage_order",
                "stage_kind",
                "amount",
                "forecast_category",
                "owner_id",
                "account_id",
                "closed_at",
                "is_renewal",
            ],
        )
        await conn.copy_records_to_table(
            "opportunities",
            records=latest,
            columns=[
                "opportunity_id",
                "last_at",
                "last_event_id",
                "owner_id",
                "stage",
                "stage_kind",
                "amount",
                "forecast_category",
                "closed_at",
                "nbm_at",
                "qualified_at",
                "is_renewal",
            ],
        )
        await conn.execute("ANALYZE opportunity_history; ANALYZE opportunities")
    finally:
        await conn.close()
    print(f"  loaded {len(history):,} history rows over {len(latest):,} opportunities")
    return START + timedelta(days=200)


async def time_snapshot(settings: RenewalsSettings, as_of: datetime) -> tuple[float, int]:
    database = Database(settings.resolved_database_url(), SPEC.name)
    try:
        started = time.perf_counter()
        async with database.transaction() as session:
            stored = await store_snapshot(
                session, settings, as_of=as_of, scheduled_at=as_of, taken_at=datetime.now(UTC)
            )
        elapsed = time.perf_counter() - started
        async with database.transaction() as session:
            row = (
                await session.execute(
                    select(models.snapshots.c.opportunities).where(
                        models.snapshots.c.id == stored.id
                    )
                )
            ).one()
        return elapsed, int(row.opportunities)
    finally:
        await database.dispose()


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="consumer batch size")
    parser.add_argument("--snapshot-opps", type=int, default=100_000)
    parser.add_argument("--snapshot-changes", type=int, default=1_000_000)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", default="bench/results/renewals_throughput.json")
    args = parser.parse_args()

    settings = service_settings(
        RenewalsSettings,
        "renewals",
        unique_prefix(),
        consumer_batch_max=args.batch,
        kafka_linger_ms=20,
    )
    assert isinstance(settings, RenewalsSettings)
    result: dict[str, Any] = {"bench": "renewals_throughput", "consumer_batch_max": args.batch}
    if not args.skip_throughput:
        await admin.ensure_topics(
            settings.kafka_bootstrap_servers, settings.topic_prefix, SPEC.topics
        )
        events = generate(args.events)
        print(f"publishing {len(events)} events under prefix {settings.topic_prefix!r} ...")
        publish_s = await publish_all(settings, events)
        print(f"  published in {publish_s:.1f} s ({len(events) / publish_s:,.0f} events/s)")
        raw_s = await raw_consume(settings, len(events))
        raw_rate = len(events) / raw_s
        print(f"raw aiokafka consume:    {raw_rate:>10,.0f} events/s ({raw_s:.2f} s)")
        renewals_s, counts = await renewals_consume(settings, len(events))
        rate = len(events) / renewals_s
        print(f"renewals with writes:    {rate:>10,.0f} events/s ({renewals_s:.2f} s)")
        print(f"ratio: {rate / raw_rate:.1%} of raw")
        await admin.delete_topics_with_prefix(
            settings.kafka_bootstrap_servers, settings.topic_prefix
        )
        result.update(
            events=len(events),
            raw_events_per_s=round(raw_rate),
            renewals_events_per_s=round(rate),
            ratio=round(rate / raw_rate, 4),
            raw_seconds=round(raw_s, 3),
            renewals_seconds=round(renewals_s, 3),
            applied=counts,
        )
    print(
        f"loading {args.snapshot_changes:,} stage changes over {args.snapshot_opps:,} "
        "opportunities ..."
    )
    middle = await load_history(settings, args.snapshot_opps, args.snapshot_changes)
    timings = {}
    for label, as_of in (("middle", middle), ("end", START + timedelta(days=800))):
        snapshot_s, opportunities = await time_snapshot(settings, as_of)
        timings[label] = {"seconds": round(snapshot_s, 3), "opportunities": opportunities}
        print(
            f"snapshot as of {as_of.isoformat()} ({label} of the history): "
            f"{snapshot_s:.2f} s over {opportunities:,} opportunities"
        )
    result.update(
        snapshots=timings,
        snapshot_history_rows=args.snapshot_changes,
        load_average_1m=os.getloadavg()[0],
        cpus=os.cpu_count(),
        run_at=datetime.now(UTC).isoformat(),
        out=args.out,
    )
    return result


if __name__ == "__main__":
    figures = asyncio.run(main())
    out = Path(figures.pop("out"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")

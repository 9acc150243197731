"""Router throughput: leads/s routed with their writes, beside the raw consume rate of the
same events in the same run; then the latency from the Kafka acknowledgement (the moment
ingest answers the webhook 2xx) to the assignment committed, at a fixed rate.

    uv run python bench/router_throughput.py --leads 20000 --rate 100 --seconds 20

Publishes, under a unique topic prefix, accounts (with domains and owners), SDR touches on
some of them, open opportunities on a few, then N form submissions (a quarter of them
from the accounts' domains, some from free mail, some consultants), and
  (a) reads the forms with a bare AIOKafkaConsumer (decode nothing: the ceiling),
  (b) routes them (after the context events, applied and timed on their own) with the
      router's own ConsumerRunner and handlers (inbox, matching,
      rules, the shared rotation locked per batch, leads, turns, outbox) into a fresh
      ``router`` schema of ``revops_test``, and
  (c) with `revops-router` running in a process of its own (API, consumer and outbox
      relay, as deployed), publishes
      forms at ``--rate`` per second, one acks=all publish each, and measures from each
      acknowledgement to its lead row being visible (polled every 5 ms).
Prints the rates, their ratio and the latency percentiles; JSON goes to
bench/results/router_throughput.json. Needs `make infra`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from revops.events import admin, topics
from revops.events.catalogue import (
    AccountChanged,
    AccountChangedEvent,
    ActivityLogged,
    ActivityLoggedEvent,
    Envelope,
    FormSubmitted,
    FormSubmittedEvent,
    OpportunityChanged,
    OpportunityChangedEvent,
    SourceRef,
    make_event,
)
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.service import ServiceRuntime
from revops.events.testing import fresh_schema, service_settings, unique_prefix
from revops.router import models as m
from revops.router.main import SPEC, build_runtime, consume, ensure_queues
from revops.router.settings import RouterSettings

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
FORM_TYPES = ["demo_request", "contact", "ebook", "whitepaper", "newsletter", "webinar"]
COUNTRIES = ["US", "United States", "Canada", "UK", "Germany", "FRA", "Japan", "IN", "Brazil"]
FREE = ["gmail.com", "yahoo.com", "outlook.com"]
ACCOUNTS = 500


def ref(kind: str, object_id: str) -> SourceRef:
    return SourceRef(system="salesforce", object_type=kind, object_id=object_id)


def reps() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for region in ("AMER", "EMEA", "APAC"):
        for i in range(4):
            out.append(
                {
                    "id": f"SDR-{region}-{i}",
                    "role": "SDR",
                    "region": region,
                    "certified": True,
                    "weight": 2 if i == 3 else 1,
                    "paused": i == 1 and region == "EMEA",
                    "name": "",
                    "consultant": False,
                    "active": True,
                    "out_of_office": False,
                }
            )
        for i in range(3):
            out.append(
                {
                    "id": f"AE-{region}-{i}",
                    "role": "AE",
                    "region": region,
                    "certified": True,
                    "paired_sdr_id": f"SDR-{region}-{i}",
                    "weight": 1,
                    "paused": False,
                    "name": "",
                    "consultant": False,
                    "active": True,
                    "out_of_office": False,
                }
            )
    return out


def context_events(rng: random.Random) -> list[Envelope]:
    events: list[Envelope] = []
    for a in range(ACCOUNTS):
        region = ("AMER", "EMEA", "APAC")[a % 3]
        events.append(
            make_event(
                AccountChangedEvent,
                id=f"acct-{a}",
                source="salesforce",
                occurred_at=START - timedelta(days=100),
                payload=AccountChanged(
                    account_id=f"001-{a}",
                    change="created",
                    name=f"Co {a}",
                    domains=[f"co{a}.com"],
                    owner_id=f"AE-{region}-{a % 3}",
                    region=region,
                    source_ref=ref("Account", f"001-{a}"),
                ),
            )
        )
        if a % 4 == 0:
            events.append(
                make_event(
                    ActivityLoggedEvent,
                    id=f"act-{a}",
                    source="salesforce",
                    occurred_at=START - timedelta(days=rng.randint(1, 40)),
                    payload=ActivityLogged(
                        activity_id=f"act-{a}",
                        kind="call",
                        rep_id=f"SDR-{region}-{rng.randint(0, 3)}",
                        account_id=f"001-{a}",
                        source_ref=ref("Task", f"t{a}"),
                    ),
                )
            )
        if a % 10 == 1:
            events.append(
                make_event(
                    OpportunityChangedEvent,
                    id=f"opp-{a}",
                    source="salesforce",
                    occurred_at=START - timedelta(days=20),
                    payload=OpportunityChanged(
                        opportunity_id=f"006-{a}",
                        change="created",
                        account_id=f"001-{a}",
                        owner_id=f"AE-{region}-0",
                        is_closed=False,
                        created_at=START - timedelta(days=20),
                        source_ref=ref("Opportunity", f"006-{a}"),
                    ),
                )
            )
    return events


def form_event(i: int, rng: random.Random, tag: str, at: datetime) -> FormSubmittedEvent:
    roll = rng.random()
    if roll < 0.25:
        domain = f"co{rng.randrange(ACCOUNTS)}.com"
    elif roll < 0.35:
        domain = rng.choice(FREE)
    else:
        domain = f"prospect{i}.io"
    return make_event(
        FormSubmittedEvent,
        id=f"{tag}-form-{i}",
        source="hubspot",
        occurred_at=at,
        payload=FormSubmitted(
            email=f"{tag}{i}@{domain}",
            form_type=rng.choice(FORM_TYPES),
            country=rng.choice(COUNTRIES),
            is_consultant=rng.random() < 0.02,
        ),
    )


async def raw_consume(settings: RouterSettings, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def count_leads(runtime: ServiceRuntime) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(m.leads)) or 0)


async def apply_context(settings: RouterSettings, accounts: int) -> float:
    """Apply the accounts, touches and opportunities first (timed on their own), so the
    routing rate below is the forms' alone."""
    runtime = build_runtime(settings)
    await ensure_queues(runtime)
    async with runtime.database.transaction() as session:
        await session.execute(pg_insert(m.reps).values(reps()).on_conflict_do_nothing())
    started = time.perf_counter()
    runner = asyncio.create_task(consume(runtime))
    while True:
        async with runtime.database.transaction() as session:
            done = await session.scalar(select(func.count()).select_from(m.accounts))
        if done == accounts:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    runtime.consumer.stop()
    await runner
    await runtime.producer.stop()
    await runtime.database.dispose()
    return elapsed


async def routed_rate(settings: RouterSettings, total: int) -> tuple[float, float]:
    """From the consumer's start to the last lead committed, outbox relay running; and the
    CPU seconds this process used meanwhile (the machine's load does not inflate those)."""
    runtime = build_runtime(settings)
    cpu = time.process_time()
    started = time.perf_counter()
    runner = asyncio.create_task(consume(runtime))
    relay = asyncio.create_task(runtime.relay.run())
    while True:
        if await count_leads(runtime) >= total:
            break
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    runtime.consumer.stop()
    runtime.relay.stop()
    await asyncio.gather(runner, relay)
    await runtime.producer.stop()
    await runtime.database.dispose()
    return elapsed, cpu


async def start_router_process(settings: RouterSettings) -> asyncio.subprocess.Process:
    """``revops-router`` in a process of its own, as deployed (API, consumer, relay)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "TOPIC_PREFIX": settings.topic_prefix,
        "DATABASE_URL": settings.resolved_database_url(),
        "HTTP_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "revops.router.main", env=env
    )
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process
            await asyncio.sleep(0.1)
    process.terminate()
    raise RuntimeError("revops-router did not become ready")


async def latency(settings: RouterSettings, rate: float, seconds: float) -> list[float]:
    """Open loop: form i is published at t0 + i/rate whatever happened before; latency is
    from its acknowledgement to its lead row being visible."""
    router = await start_router_process(settings)
    await asyncio.sleep(3)  # the group settles
    producer = EventProducer(settings, client_id="bench")
    await producer.start()
    database = Database(settings.resolved_database_url(), "router", pool_size=2)
    rng = random.Random(7)
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    n = int(rate * seconds)

    async def send(i: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        event = form_event(i, rng, "lat", START + timedelta(days=3, seconds=i))
        await producer.publish([event])
        acked[event.payload.email] = time.perf_counter()

    async def watch() -> None:
        # Only the acknowledged leads not seen yet, by the unique index: the watcher must
        # not load the database it measures.
        while len(seen) < n:
            waiting = [e for e in acked if e not in seen]
            if waiting:
                async with database.transaction() as session:
                    rows = await session.execute(
                        select(m.leads.c.email).where(m.leads.c.email.in_(waiting))
                    )
                    now = time.perf_counter()
                    for (email,) in rows:
                        seen.setdefault(email, now)
            await asyncio.sleep(0.005)

    try:
        t0 = time.perf_counter() + 0.1
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(send(i, t0 + i / rate) for i in range(n)))
        await asyncio.wait_for(watcher, 60)
    finally:
        await producer.stop()
        await database.dispose()
        router.send_signal(signal.SIGTERM)
        await router.wait()
    return sorted(max(0.0, seen[e] - acked[e]) * 1000 for e in acked)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=RouterSettings().consumer_batch_max)
    args = parser.parse_args()

    prefix = unique_prefix()
    settings = service_settings(
        RouterSettings,
        "router",
        prefix,
        consumer_batch_max=args.batch,
        consumer_poll_ms=50,
        db_pool_size=5,
        kafka_publish_timeout_s=30,  # loading the topics, on a busy machine
    )
    assert isinstance(settings, RouterSettings)
    await admin.ensure_topics(settings.kafka_bootstrap_servers, prefix, topics.ALL_TOPICS)
    await fresh_schema(SPEC, settings.resolved_database_url())
    rng = random.Random(42)
    context = context_events(rng)
    forms = [form_event(i, rng, "tp", START + timedelta(seconds=i)) for i in range(args.leads)]
    producer = EventProducer(settings, client_id="bench")
    await producer.start()
    for chunk in range(0, len(context), 2000):
        await producer.publish(context[chunk : chunk + 2000])
    context_s = await apply_context(settings, ACCOUNTS)
    for chunk in range(0, len(forms), 2000):
        await producer.publish(forms[chunk : chunk + 2000])
    await producer.stop()

    raw_s = await raw_consume(settings, topics.FORMS.name(prefix), len(forms))
    load_before = os.getloadavg()[0]
    routed_s, routed_cpu_s = await routed_rate(settings, len(forms))
    latencies = await latency(settings, args.rate, args.seconds)
    raw_rate = len(forms) / raw_s
    router_rate = len(forms) / routed_s
    result = {
        "leads": len(forms),
        "context_events": len(context),
        "context_events_per_s": round(len(context) / context_s),
        "raw_consume_events_per_s": round(raw_rate),
        "router_leads_per_s": round(router_rate),
        "ratio": round(router_rate / raw_rate, 3),
        "router_process_cpu_ms_per_lead": round(routed_cpu_s / len(forms) * 1000, 3),
        "load_average_1m_before_routing": round(load_before, 2),
        "cpus": os.cpu_count(),
        "batch_max": args.batch,
        "latency_rate_per_s": args.rate,
        "latency_leads": len(latencies),
        "latency_ms_p50": round(pct(latencies, 50), 1),
        "latency_ms_p99": round(pct(latencies, 99), 1),
        "latency_ms_max": round(max(latencies), 1),
        "latency_ms_mean": round(statistics.fmean(latencies), 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "router_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    await admin.delete_topics_with_prefix(settings.kafka_bootstrap_servers, prefix)


if __name__ == "__main__":
    asyncio.run(main())

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
  (c) applies ``--changes`` person, account and opportunity changes (HubSpot contacts
      in bursts of 5 like the e2e workload, Salesforce lead statuses on the routed leads,
      account renames and owner changes that move leads, opportunity stage changes),
      beside the raw consume rate of the same topics, and
  (d) with `revops-router` running in a process of its own (API, consumer and outbox
      relay, as deployed), publishes
      forms at ``--rate`` per second, one acks=all publish each, and measures from each
      acknowledgement to its lead row being visible (polled every 5 ms).
Prints the rates, their ratio and the latency percentiles; JSON goes to ``--out``
(bench/results/router_throughput.json). Needs `make infra`.
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
from collections.abc import Callable, Sequence
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
    PersonChanged,
    PersonChangedEvent,
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


def form_event(
    i: int,
    rng: random.Random,
    tag: str,
    at: datetime,
    *,
    countries: Sequence[str] = COUNTRIES,
    more: Callable[[random.Random], dict[str, Any]] | None = None,
) -> FormSubmittedEvent:
    """Form ``i``: a quarter from the accounts' domains, a tenth from free mail, the rest
    from prospects' own; ``more`` draws further fields (bench/routing_policies.py's), after
    the country and before the consultant flag, so each bench's forms stay as they were."""
    roll = rng.random()
    if roll < 0.25:
        domain = f"co{rng.randrange(ACCOUNTS)}.com"
    elif roll < 0.35:
        domain = rng.choice(FREE)
    else:
        domain = f"prospect{i}.io"
    email = f"{tag}{i}@{domain}"
    form_type, country = rng.choice(FORM_TYPES), rng.choice(countries)
    extra = more(rng) if more is not None else {}
    return make_event(
        FormSubmittedEvent,
        id=f"{tag}-form-{i}",
        source="hubspot",
        occurred_at=at,
        payload=FormSubmitted(
            email=email,
            form_type=form_type,
            country=country,
            **extra,
            is_consultant=rng.random() < 0.02,
        ),
    )


def change_events(count: int, leads: int) -> list[Envelope]:
    """Changes in the proportions of a CRM's traffic: 2/5 HubSpot contacts (a burst of 5
    per contact: created, then email, name, country, status; every other one the email of
    a routed lead, which gets its HubSpot id and status), 1/5 Salesforce lead statuses on
    routed leads, 1/5 account changes (every 10th an owner change that moves the
    account's leads), 1/5 opportunity stage changes (every 20th closed)."""
    at = START + timedelta(days=1)
    events: list[Envelope] = []
    n = 0
    while len(events) < count:
        n += 1
        email = f"tp{n * 7 % leads}@" if n % 2 else f"contact{n}@"
        contact = SourceRef(system="hubspot", object_type="contact", object_id=f"hs-{n}")
        for i, (mail, status) in enumerate(
            [(None, None), (email, None), (email, None), (email, None), (email, "OPEN")]
        ):
            events.append(
                make_event(
                    PersonChangedEvent,
                    id=f"hs-{n}-{i}",
                    source="hubspot",
                    occurred_at=at + timedelta(seconds=n, milliseconds=i),
                    payload=PersonChanged(
                        person_type="contact",
                        change="created" if i == 0 else "updated",
                        email=_full_email(mail) if mail else None,
                        status=status,
                        country="Germany" if i == 3 else None,
                        source_ref=contact,
                    ),
                )
            )
        for i in range(5):
            k = n * 5 + i
            events.append(
                make_event(
                    PersonChangedEvent,
                    id=f"sf-lead-{k}",
                    source="salesforce",
                    occurred_at=at + timedelta(seconds=n, milliseconds=10 + i),
                    payload=PersonChanged(
                        person_type="lead",
                        change="updated",
                        email=_full_email(f"tp{k % leads}@"),
                        status=("Working", "Nurture", "Working", "Qualified", "New")[i],
                        source_ref=ref("Lead", f"00Q{k % leads}"),
                    ),
                )
            )
            a = k % ACCOUNTS
            region = ("AMER", "EMEA", "APAC")[a % 3]
            events.append(
                make_event(
                    AccountChangedEvent,
                    id=f"acct-change-{k}",
                    source="salesforce",
                    occurred_at=at + timedelta(seconds=n, milliseconds=20 + i),
                    payload=AccountChanged(
                        account_id=f"001-{a}",
                        change="updated",
                        name=f"Co {a} ({k})",
                        owner_id=f"AE-{region}-{(a + k // 10) % 3}" if k % 10 == 0 else None,
                        region=region,
                        source_ref=ref("Account", f"001-{a}"),
                    ),
                )
            )
            o = k % (ACCOUNTS // 10) * 10 + 1
            events.append(
                make_event(
                    OpportunityChangedEvent,
                    id=f"opp-change-{k}",
                    source="salesforce",
                    occurred_at=at + timedelta(seconds=n, milliseconds=30 + i),
                    payload=OpportunityChanged(
                        opportunity_id=f"006-{o}",
                        change="updated",
                        stage=f"stage {k % 4}",
                        is_closed=k % 20 == 0,
                        source_ref=ref("Opportunity", f"006-{o}"),
                    ),
                )
            )
    return events[:count]


_FORM_DOMAINS: dict[str, str] = {}


def _full_email(local: str) -> str:
    """``tp<i>@`` -> the routed lead's email (its domain was drawn at random)."""
    return _FORM_DOMAINS.get(local, local + "example.org")


async def raw_consume(settings: RouterSettings, topic: str | list[str], count: int) -> float:
    consumer = AIOKafkaConsumer(
        *([topic] if isinstance(topic, str) else topic),
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


async def count_applied(runtime: ServiceRuntime) -> int:
    async with runtime.database.transaction() as session:
        inbox = m.metadata.tables["router.inbox"]
        return int(await session.scalar(select(func.count()).select_from(inbox)) or 0)


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


async def routed_rate(
    settings: RouterSettings, total: int, *, applied: int | None = None
) -> tuple[float, float]:
    """From the consumer's start to the last lead committed (or, with ``applied``, to that
    many events in the inbox), outbox relay running; and the CPU seconds this process used
    meanwhile (the machine's load does not inflate those)."""
    runtime = build_runtime(settings)
    cpu = time.process_time()
    started = time.perf_counter()
    runner = asyncio.create_task(consume(runtime))
    relay = asyncio.create_task(runtime.relay.run())
    while True:
        if applied is None and await count_leads(runtime) >= total:
            break
        if applied is not None and await count_applied(runtime) >= applied:
            break
        await asyncio.sleep(0.1)
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
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "router_throughput.json"
    )
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
    for f in forms:
        local = f.payload.email.partition("@")[0]
        _FORM_DOMAINS[local + "@"] = f.payload.email
    changes = change_events(args.changes, args.leads) if args.changes else []
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
    change_result: dict[str, Any] = {}
    if changes:
        producer = EventProducer(settings, client_id="bench")
        await producer.start()
        for chunk in range(0, len(changes), 2000):
            await producer.publish(changes[chunk : chunk + 2000])
        await producer.stop()
        change_topics = [t.name(prefix) for t in (topics.PEOPLE, topics.ACCOUNTS)]
        change_topics.append(topics.OPPORTUNITIES.name(prefix))
        opportunities = sum(1 for e in context if isinstance(e, OpportunityChangedEvent))
        accounts = sum(1 for e in context if isinstance(e, AccountChangedEvent))
        raw_changes_s = await raw_consume(
            settings, change_topics, len(changes) + opportunities + accounts
        )
        load_changes = os.getloadavg()[0]
        changes_s, changes_cpu_s = await routed_rate(
            settings, 0, applied=len(context) + len(forms) + len(changes)
        )
        raw_changes_rate = (len(changes) + opportunities + accounts) / raw_changes_s
        change_result = {
            "changes": len(changes),
            "raw_consume_changes_per_s": round(raw_changes_rate),
            "router_changes_per_s": round(len(changes) / changes_s),
            "changes_ratio": round(len(changes) / changes_s / raw_changes_rate, 3),
            "router_process_cpu_ms_per_change": round(changes_cpu_s / len(changes) * 1000, 3),
            "load_average_1m_before_changes": round(load_changes, 2),
        }
    load_latency = os.getloadavg()[0]
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
        **change_result,
        "cpus": os.cpu_count(),
        "batch_max": args.batch,
        "load_average_1m_before_latency": round(load_latency, 2),
        "latency_rate_per_s": args.rate,
        "latency_leads": len(latencies),
        "latency_ms_p50": round(pct(latencies, 50), 1),
        "latency_ms_p99": round(pct(latencies, 99), 1),
        "latency_ms_max": round(max(latencies), 1),
        "latency_ms_mean": round(statistics.fmean(latencies), 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    await admin.delete_topics_with_prefix(settings.kafka_bootstrap_servers, prefix)


if __name__ == "__main__":
    asyncio.run(main())

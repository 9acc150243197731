"""Routing throughput with a 200-territory routing policy and company names matched
against 100,000 accounts, beside the same leads routed as before (the configuration's
policy, one territory per region by country, and no name matching) in the same run.

    uv run python bench/routing_policies.py --leads 20000 --accounts 100000

Each run gets a topic prefix and a fresh ``router`` schema of its own and publishes the
same accounts, touches and opportunities as bench/router_throughput.py, then (second run
only) a ``routing_policy.changed`` of 200 territories on the roster topic; adds the same
``--accounts`` accounts (names made of made-up words, so most first words are rare, as
real names' are) straight into the schema; then publishes the same N forms (country,
state, employees and segment drawn at random, so leads stop at every depth of the
territory list and some match none; a company on each: an account's name with another
legal form or a typo, or a name nobody has). It times the router's own consumer
routing them (inbox, matching, territories, rules, rotations, leads, outbox) and checks
where they went. JSON goes to ``--out`` (bench/results/routing_policies.json). Needs
`make infra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from revops.events import admin, topics
from revops.events.catalogue import (
    Envelope,
    FormSubmittedEvent,
    RoutingPolicyChanged,
    RoutingPolicyChangedEvent,
    make_event,
)
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.testing import fresh_schema, service_settings, unique_prefix
from revops.router import models as m
from revops.router.accounts import store_account_names
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

sys.path.insert(0, str(Path(__file__).parent))
from router_throughput import (
    ACCOUNTS,
    START,
    apply_context,
    context_events,
    routed_rate,
)
from router_throughput import form_event as router_form_event

COUNTRIES = ["US", "Canada", "UK", "Germany", "France", "Japan", "India", "Brazil", "Spain"]
STATES = ["CA", "NY", "TX", "WA", "ON", "BC", "Bavaria", "Ile-de-France"]
SEGMENTS = ["smb", "mid-market", "enterprise", "public-sector"]
BANDS = [(0, 49), (50, 199), (200, 999), (1000, 4999), (5000, None)]
REGION_OF = {"US": "AMER", "Canada": "AMER", "Brazil": "AMER", "Japan": "APAC", "India": "APAC"}


def territories_policy(count: int) -> str:
    """``count`` territories: country x segment x size band, with a state on some, then
    one catch-all per region by country; JSON (a YAML document too)."""
    out: list[dict[str, Any]] = []
    combos = [(c, s, b) for c in COUNTRIES for s in SEGMENTS for b in BANDS]
    for i, (country, segment, (low, high)) in enumerate(combos[: count - 3]):
        match: dict[str, Any] = {
            "countries": [country],
            "segments": [segment],
            "employees": {"min": low, "max": high},
        }
        if i % 3 == 0:
            match["states"] = STATES[i % len(STATES) : i % len(STATES) + 2]
        region = REGION_OF.get(country, "EMEA")
        out.append({"name": f"t{i:03}-{country}-{segment}", "region": region, "match": match})
    for region, countries in (
        ("AMER", ["US", "Canada", "Brazil", "Mexico"]),
        ("EMEA", ["UK", "Germany", "France", "Spain"]),
        ("APAC", ["Japan", "India", "Australia"]),
    ):
        out.append({"name": f"rest-{region}", "region": region, "match": {"countries": countries}})
    return json.dumps({"territories": out[:count], "fallback_region": "AMER"})


def form_event(
    i: int, rng: random.Random, tag: str, at: datetime, names: list[str]
) -> FormSubmittedEvent:
    """router_throughput's form with a state, a size, a segment and a company drawn too,
    so leads stop at every depth of the territory list."""

    def policy_fields(rng: random.Random) -> dict[str, Any]:
        return {
            "state": rng.choice([*STATES, None]),
            "employees": rng.choice([None, rng.randrange(0, 20_000)]),
            "segment": rng.choice([*SEGMENTS, None]),
            "company": company_of(rng, names),
        }

    return router_form_event(
        i, rng, tag, at, countries=[*COUNTRIES, "Mexico", "Australia", "Kenya"], more=policy_fields
    )


SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "qui", "ber", "dun", "sel", "ox", "pra"]
KINDS = ["Systems", "Labs", "Foods", "Logistics", "Health", "Energy", "Media", "Bank"]
LEGAL = ["Inc.", "GmbH", "Ltd", "S.A.", "LLC", ""]


def account_names(count: int) -> list[str]:
    rng = random.Random(11)
    names: set[str] = set()
    while len(names) < count:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 5))).title()
        names.add(f"{word} {rng.choice(KINDS)}")
    return sorted(names)


def company_of(rng: random.Random, names: list[str]) -> str:
    roll = rng.random()
    name = rng.choice(names)
    if roll < 0.5:  # the account's name as people write it
        return f"{name.upper() if rng.random() < 0.3 else name} {rng.choice(LEGAL)}".strip()
    if roll < 0.75:  # a typo: one letter dropped from the second word
        word, rest = name.split(" ", 1)
        i = rng.randrange(1, len(rest))
        return f"{word} {rest[:i]}{rest[i + 1 :]}"
    return f"{name.split(' ', 1)[0]} Unrelated Holdings Partners"  # shares a block only


async def add_accounts(settings: RouterSettings, names: list[str]) -> None:
    """Straight into the schema (as the accounts' events would leave them)."""
    database = Database(settings.resolved_database_url(), "router", pool_size=1)
    rows = [
        {"id": f"001N{i:07}", "name": n, "region": ("AMER", "EMEA", "APAC")[i % 3]}
        for i, n in enumerate(names)
    ]
    for chunk in range(0, len(rows), 10_000):
        part = rows[chunk : chunk + 10_000]
        async with database.transaction() as session:
            await session.execute(m.accounts.insert(), part)
            await store_account_names(session, {r["id"]: r["name"] for r in part})
    await database.dispose()


async def one_run(
    leads: int, batch: int, policy: str | None, names: list[str], by_name: bool
) -> dict[str, Any]:
    prefix = unique_prefix()
    settings = service_settings(
        RouterSettings,
        "router",
        prefix,
        consumer_batch_max=batch,
        consumer_poll_ms=50,
        db_pool_size=5,
        kafka_publish_timeout_s=30,
        company_name_matching=by_name,
    )
    assert isinstance(settings, RouterSettings)
    await admin.ensure_topics(settings.kafka_bootstrap_servers, prefix, topics.ALL_TOPICS)
    await fresh_schema(SPEC, settings.resolved_database_url())
    rng = random.Random(42)
    context: list[Envelope] = list(context_events(rng))
    if policy is not None:
        change = RoutingPolicyChanged(document=policy, changed_by="bench")
        context.append(
            make_event(
                RoutingPolicyChangedEvent,
                id=f"{prefix}policy",
                source="router",
                occurred_at=START,
                payload=change,
            )
        )
    drawn = random.Random(7)  # the same forms in both runs
    forms = [form_event(i, drawn, "tp", START + timedelta(seconds=i), names) for i in range(leads)]
    producer = EventProducer(settings, client_id="bench")
    await producer.start()
    for chunk in range(0, len(context), 2000):
        await producer.publish(context[chunk : chunk + 2000])
    await apply_context(settings, ACCOUNTS)
    await add_accounts(settings, names)
    for chunk in range(0, len(forms), 2000):
        await producer.publish(forms[chunk : chunk + 2000])
    await producer.stop()
    load = os.getloadavg()
    routed_s, cpu_s = await routed_rate(settings, len(forms))
    where = await _where_they_went(settings)
    await admin.delete_topics_with_prefix(settings.kafka_bootstrap_servers, prefix)
    return {
        "leads": len(forms),
        "leads_per_s": round(len(forms) / routed_s),
        "router_process_cpu_ms_per_lead": round(cpu_s / len(forms) * 1000, 3),
        "load_average_before": [round(x, 2) for x in load],
        **where,
    }


async def _where_they_went(settings: RouterSettings) -> dict[str, Any]:
    database = Database(settings.resolved_database_url(), "router", pool_size=1)
    async with database.transaction() as session:
        versions = await session.scalar(select(func.max(m.routing_policies.c.version)))
        rows = await session.execute(
            select(m.leads.c.territory, func.count()).group_by(m.leads.c.territory)
        )
        by_territory = {str(t): int(n) for t, n in rows}
        matches = await session.execute(
            select(m.leads.c.match, func.count()).group_by(m.leads.c.match)
        )
        by_match = {str(k): int(n) for k, n in matches}
    await database.dispose()
    return {
        "policy_version": versions or 0,
        "territories_used": len([t for t in by_territory if t != "None"]),
        "leads_in_no_territory": by_territory.get("None", 0),
        "leads_by_match": by_match,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--territories", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=RouterSettings().consumer_batch_max)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "routing_policies.json"
    )
    args = parser.parse_args()
    policy = territories_policy(args.territories)
    names = account_names(args.accounts)
    today = await one_run(args.leads, args.batch, None, names, by_name=False)
    territories = await one_run(args.leads, args.batch, policy, names, by_name=True)
    result = {
        "accounts": args.accounts + ACCOUNTS,
        "before_configured_policy_no_name_matching": today,
        f"{args.territories}_territories_and_name_matching": territories,
        "ratio": round(territories["leads_per_s"] / today["leads_per_s"], 3),
        "cpus": os.cpu_count(),
        "batch_max": args.batch,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())

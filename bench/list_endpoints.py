"""The router's list endpoints with many leads: the server-side time of a page of 100
(p50, p99 over repeated requests, through the app in-process: routing, the query,
serialisation) and each list query's plan (does it read the whole table?).

    uv run python bench/list_endpoints.py --leads 100000 --requests 200

Seeds the router's schema of the database it is given (default: the tests' database,
``REVOPS_TEST_DB``) with ``--leads`` leads spread over 90 days, half of them never
touched (so SLA breaches are plenty), and a few hundred write-backs; the schema is
emptied first. Prints one JSON object. Hold the machine's benchmark lock while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from revops.events.testing import database_url_for_tests, fresh_schema, unique_prefix
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings

ADMIN = {"Authorization": "Bearer dev-admin-token"}
PAGES = {
    "leads, oldest first": ("/leads", {"limit": 100}),
    "leads, newest first": ("/leads", {"limit": 100, "newest_first": "true"}),
    "leads, deep page": ("/leads", {"limit": 100, "offset": 50_000}),
    "leads of a queue": ("/leads", {"limit": 100, "queue": "inbound-AMER"}),
    "leads of a queue, newest first": (
        "/leads",
        {"limit": 100, "queue": "inbound-EMEA", "newest_first": "true"},
    ),
    "leads of an owner": ("/leads", {"limit": 100, "owner_id": "rep-7"}),
    "leads by rule": ("/leads", {"limit": 100, "rule": "unassigned"}),
    "SLA breaches": ("/sla/breaches", {"limit": 100}),
    "write-backs": ("/writebacks", {"limit": 100, "status": "all"}),
    "reps": ("/reps", {"limit": 100}),
}
PLANS = {
    "leads, newest first": "SELECT * FROM router.leads ORDER BY created_at DESC, id DESC LIMIT 100",
    "leads of a queue": "SELECT * FROM router.leads WHERE queue = 'inbound-AMER' "
    "ORDER BY created_at, id LIMIT 100",
    "total of a queue": "SELECT count(*) FROM router.leads WHERE queue = 'inbound-AMER'",
    "total of an owner": "SELECT count(*) FROM router.leads WHERE owner_id = 'rep-7'",
}

SEED = """
INSERT INTO router.leads (id, email, match, region, country, form_type, owner_id,
    owner_role, rule, reason, queue, priority, created_at, routed_at, first_touch_at,
    source_event_id)
SELECT 'L' || n, 'lead' || n || '@company' || (n % 5000) || '.example', 'none', 'AMER', 'US',
       'demo_request', CASE WHEN n % 10 = 0 THEN NULL ELSE 'rep-' || (n % 40) END, 'SDR',
       CASE WHEN n % 10 = 0 THEN 'unassigned' ELSE 'round_robin' END, 'seeded',
       CASE WHEN n % 10 = 0 THEN 'unassigned' WHEN n % 2 = 0 THEN 'inbound-AMER'
            ELSE 'inbound-EMEA' END,
       'normal', now() - make_interval(secs => n * 77.76), now() - make_interval(secs => n * 77.76),
       CASE WHEN n % 2 = 0 THEN now() - make_interval(secs => n * 77.76 - 60) END,
       'ev-' || n
  FROM generate_series(1, $1) AS n
"""
WRITEBACKS = """
INSERT INTO router.outbox (event_id, destination, topic, key, value, failed_at)
SELECT 'wb-' || n, 'hubspot_owner', '', 'k' || n, '{}'::bytea,
       CASE WHEN n % 3 = 0 THEN now() END
  FROM generate_series(1, 300) AS n
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def seed(url: str, leads: int) -> None:
    await fresh_schema(SPEC, url)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(SEED, leads)
        await connection.execute(WRITEBACKS)
        # What autovacuum does to a table that grew: statistics, and the visibility map
        # that lets a total be counted from an index alone.
        await connection.execute("VACUUM ANALYZE router.leads")
        await connection.execute("VACUUM ANALYZE router.outbox")
    finally:
        await connection.close()


async def plans(url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        found = {}
        for name, query in PLANS.items():
            rows = await connection.fetch(f"EXPLAIN {query}")
            found[name] = [row[0] for row in rows]
        return found
    finally:
        await connection.close()


async def timings(url: str, requests: int) -> dict[str, dict[str, float]]:
    settings = RouterSettings(
        database_url=url,
        topic_prefix=unique_prefix(),
        consumer_enabled=False,
        outbox_enabled=False,
        http_access_log=False,
    )
    app = build_app(settings)
    out: dict[str, dict[str, float]] = {}
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://router", headers=ADMIN
        ) as client:
            for name, (path, params) in PAGES.items():
                for _ in range(5):  # warm: connections, plans, caches
                    (await client.get(path, params=params)).raise_for_status()
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    answer = await client.get(path, params=params)
                    times.append((time.perf_counter() - started) * 1000)
                    answer.raise_for_status()
                out[name] = {
                    "p50_ms": round(statistics.median(times), 2),
                    "p99_ms": round(percentile(times, 0.99), 2),
                    "max_ms": round(max(times), 2),
                    "rows": float(len(answer.json()["items"])),
                }
    return out


async def main(leads: int, requests: int) -> dict[str, Any]:
    url = database_url_for_tests("router")
    started = time.perf_counter()
    await seed(url, leads)
    seeded_s = time.perf_counter() - started
    return {
        "leads": leads,
        "requests_per_page": requests,
        "seed_s": round(seeded_s, 1),
        "load_average": os.getloadavg(),
        "pages": await timings(url, requests),
        "plans": await plans(url),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.leads, args.requests)), indent=2))

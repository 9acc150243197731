"""The console's pages, timed server-side: how long each page takes to answer (its calls
to the services' APIs included), over a system with many leads and a year of weekly
forecast snapshots.

    # a running system: the four services and the console (make up, or your own ports)
    uv run python bench/console_pages.py --rounds 30
    # first add 100,000 leads straight into the router's schema and 52 weekly snapshots
    uv run python bench/console_pages.py --seed-leads 100000 --snapshots 52 \
        --router-db postgresql://router:router@127.0.0.1:5432/revops

The leads are written with COPY into ``router.leads`` (a tenth waiting in the unassigned
queue, a few breaching their SLA), not routed: the pages read them, the rules never see
them. Snapshots are taken through the renewals API (``POST /forecast/snapshots``), as of
the same weekday over the past weeks. Each page is fetched ``--rounds`` times after one
warm-up, one request at a time, with the admin session; the figures are the console's
answer times seen by the client on the same machine (p50, p95, max), with the load
average before and after. JSON goes to bench/results/console_pages.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("/routing", "/attribution", "/renewals?weeks=52", "/health")
TOKEN = os.environ.get("API_TOKEN", "dev-admin-token")


async def seed_leads(dsn: str, count: int) -> None:
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    rows = []
    for i in range(count):
        created = now - timedelta(seconds=30 * (count - i))
        waiting = i % 10 == 0
        rows.append(
            (
                f"bench-{run}-{i}",
                f"lead{i}.{run}@bench.example.com",
                "none",
                None if waiting else "005BENCH",
                None if waiting else "SDR",
                "unassigned" if waiting else "round_robin",
                "nobody eligible" if waiting else "round robin turn",
                "unassigned" if waiting else "inbound_amer",
                "normal",
                created,
                created,
                created + timedelta(minutes=3) if i % 7 else None,
                f"bench:{run}:{i}",
            )
        )
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table(
            "leads",
            schema_name="router",
            records=rows,
            columns=[
                "id",
                "email",
                "match",
                "owner_id",
                "owner_role",
                "rule",
                "reason",
                "queue",
                "priority",
                "created_at",
                "routed_at",
                "first_touch_at",
                "source_event_id",
            ],
        )
        await connection.execute("ANALYZE router.leads")
    finally:
        await connection.close()


def take_snapshots(renewals: str, weeks: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for back in range(weeks - 1, -1, -1):
        as_of = (now - timedelta(weeks=back)).strftime("%Y-%m-%dT%H:%M:%SZ")
        answer = httpx.post(
            f"{renewals}/forecast/snapshots",
            json={"as_of": as_of},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        answer.raise_for_status()


def signed_in(console: str) -> httpx.Client:
    client = httpx.Client(base_url=console, timeout=60)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/signin").text)
    assert csrf, "no sign-in form"
    answer = client.post("/signin", data={"csrf": csrf.group(1), "token": TOKEN})
    assert answer.status_code == 303, answer.text
    return client


def time_pages(console: str, rounds: int) -> dict[str, Any]:
    client = signed_in(console)
    out: dict[str, Any] = {}
    for page in PAGES:
        assert client.get(page).status_code == 200, page  # warm-up
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            answer = client.get(page)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (page, answer.status_code)
        times.sort()
        out[page] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
            "max_ms": round(times[-1], 1),
            "bytes": len(answer.content),
        }
        print(f"{page:<22} p50 {out[page]['p50_ms']:>7} ms  p95 {out[page]['p95_ms']:>7} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--console", default="http://127.0.0.1:8004")
    parser.add_argument("--renewals", default="http://127.0.0.1:8003")
    parser.add_argument("--router-db", default="postgresql://router:router@127.0.0.1:5432/revops")
    parser.add_argument("--seed-leads", type=int, default=0)
    parser.add_argument("--snapshots", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if args.seed_leads:
        asyncio.run(seed_leads(args.router_db, args.seed_leads))
    if args.snapshots:
        take_snapshots(args.renewals, args.snapshots)
    before = os.getloadavg()
    pages = time_pages(args.console, args.rounds)
    result = {
        "at": datetime.now(UTC).isoformat(),
        "seeded_leads": args.seed_leads,
        "snapshots_taken": args.snapshots,
        "rounds": args.rounds,
        "load_average_before": before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "pages": pages,
    }
    target = ROOT / "bench" / "results" / "console_pages.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average {before[0]:.2f} -> {result['load_average_after'][0]:.2f}; {target}")


if __name__ == "__main__":
    main()

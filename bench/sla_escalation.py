"""What one SLA escalation look costs the router: the look over a leads table of N leads
when nothing is due (what every look of a quiet router pays, every ``SLA_CHECK_S``), and
the look that escalates ``--due`` leads at once.

    REVOPS_TEST_DB=... uv run python bench/sla_escalation.py --leads 200000 --due 1000

A fresh ``router`` schema in the tests' database; five certified SDRs in AMER's inbound
queue and a routing policy that escalates it (two reassignments, then a manager); N
round-robin leads straight into the schema, arrived over the last 30 days, three in four
touched; the ``--due`` newest untouched ones arrived ten minutes before the look, the
other untouched ones long enough ago that they were reassigned twice and went to the
manager already. Each look is its own transaction (rolled back, so each look sees the
same table); times are the median of ``--repeat`` looks. Needs `make infra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from revops.events.db import Database
from revops.events.testing import fresh_schema, service_settings, unique_prefix
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.escalation import escalate_overdue_leads
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

QUEUE = "inbound-AMER"
POLICY = f"""territories:
  - {{name: americas, region: AMER, match: {{countries: [US]}}}}
escalation:
  {QUEUE}: {{reassign: 2, manager: MGR}}
"""
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def lead_rows(count: int, due: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        untouched = i % 4 == 0
        recent = untouched and i >= count - 4 * due
        created = NOW - (timedelta(minutes=10) if recent else timedelta(minutes=30 + i % 43_000))
        rows.append(
            {
                "id": f"L{i:09}",
                "email": f"lead{i}@example{i % 997}.com",
                "match": "none",
                "country": "US",
                "region": "AMER",
                "status": "New",
                "owner_id": "MGR" if untouched and not recent else f"S{i % 5}",
                "owner_role": "SDR",
                "rule": "sla_escalated" if untouched and not recent else "round_robin",
                "reason": "bench",
                "queue": QUEUE,
                "turn": i,
                "priority": "normal",
                "created_at": created,
                "first_touch_at": None if untouched else created + timedelta(minutes=2),
                "source_event_id": f"bench-{i}",
            }
        )
    return rows


async def prepare(settings: RouterSettings, leads: int, due: int) -> None:
    await fresh_schema(SPEC, settings.resolved_database_url())
    database = Database(settings.resolved_database_url(), "router", pool_size=1)
    async with database.transaction() as session:
        # The migrations created the queues.
        reps = [
            {"id": f"S{i}", "role": "SDR", "region": "AMER", "certified": True} for i in range(5)
        ]
        await session.execute(
            m.reps.insert(),
            [*reps, {"id": "MGR", "role": "SDR", "region": "AMER", "certified": False}],
        )
        await session.execute(
            m.routing_policies.insert(),
            [{"version": 1, "event_id": "bench", "document": POLICY, "changed_at": NOW}],
        )
    rows = lead_rows(leads, due)
    for start in range(0, len(rows), 10_000):
        async with database.transaction() as session:
            await session.execute(m.leads.insert(), rows[start : start + 10_000])
    async with database.transaction() as session:
        await session.execute(text("ANALYZE router.leads"))
    await database.dispose()


async def looks(settings: RouterSettings, now: datetime, repeat: int) -> tuple[float, int]:
    """The median time of ``repeat`` looks as of ``now`` (each rolled back), and how many
    leads one look escalated."""
    database = Database(settings.resolved_database_url(), "router", pool_size=1)
    ctx = RouterContext.of(settings)
    times, made = [], 0
    for _ in range(repeat):
        async with database.sessions() as session:
            started = time.perf_counter()
            await session.begin()
            made = len(await escalate_overdue_leads(session, ctx, now))
            times.append(time.perf_counter() - started)
            await session.rollback()
    await database.dispose()
    return statistics.median(times), made


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "sla_escalation.json"
    )
    args = parser.parse_args()
    settings = service_settings(RouterSettings, "router", unique_prefix())
    assert isinstance(settings, RouterSettings)
    await prepare(settings, args.leads, args.due)
    quiet_s, none = await looks(settings, NOW - timedelta(minutes=6), args.repeat)
    due_s, made = await looks(settings, NOW, args.repeat)
    result = {
        "leads": args.leads,
        "quiet_look_ms": round(quiet_s * 1000, 1),
        "quiet_look_escalated": none,
        "due_look_ms": round(due_s * 1000, 1),
        "due_look_escalated": made,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())

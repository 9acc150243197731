"""A rebuild from the topics (schema dropped, consumer group rewound) gives back every
weekly snapshot the first run took, each as of its own Friday, with the same figures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from revops.events import admin
from revops.events.testing import eventually, fresh_schema
from revops.renewals.main import SPEC, build_app

from .conftest import ADMIN, publish, renewals_settings
from .renewals_events import opportunity

# Fridays at 18:00 in Los Angeles (PST, then PDT from March 8th).
FRIDAYS = [
    datetime(2026, 2, 14, 2, tzinfo=UTC),
    datetime(2026, 2, 21, 2, tzinfo=UTC),
    datetime(2026, 2, 28, 2, tzinfo=UTC),
    datetime(2026, 3, 7, 2, tzinfo=UTC),
    datetime(2026, 3, 14, 1, tzinfo=UTC),
    datetime(2026, 3, 21, 1, tzinfo=UTC),
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def instance(settings: Any, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, clock=clock, scheduler_tick_s=0.2)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r", headers=ADMIN) as c:
            yield c


def wire(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def all_snapshots(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every scheduled snapshot with its figures, by its Friday (once all six are there)."""
    listed = await client.get("/forecast/snapshots")
    assert listed.status_code == 200, listed.text
    items = [s for s in listed.json()["items"] if s["scheduled_at"]]
    assert sorted(s["scheduled_at"] for s in items) == [wire(f) for f in FRIDAYS]
    found = {}
    for item in items:
        detail = (await client.get(f"/forecast/snapshots/{item['id']}")).json()
        found[item["scheduled_at"]] = {
            key: detail[key] for key in ("id", "as_of", "opportunities", "contents")
        }
    return found


async def test_a_rebuild_recreates_every_weekly_snapshot(kafka_settings):
    settings = renewals_settings(kafka_settings, scheduler_enabled=True)
    await fresh_schema(SPEC, settings.resolved_database_url())
    # Six weeks of history, a change in most of them.
    await publish(
        kafka_settings,
        [
            opportunity(
                "r1",
                datetime(2026, 2, 10, tzinfo=UTC),
                "006R1",
                stage="1 - Interest",
                amount="1000",
                owner_id="005A",
                change="created",
            ),
            opportunity("r2", datetime(2026, 2, 18, tzinfo=UTC), "006R1", stage="2 - Qualified"),
            opportunity(
                "r3",
                datetime(2026, 2, 25, tzinfo=UTC),
                "006R2",
                stage="1 - Interest",
                amount="700",
                owner_id="005B",
                change="created",
            ),
            opportunity("r4", datetime(2026, 3, 4, tzinfo=UTC), "006R2", stage="3 - Proposal"),
            opportunity("r5", datetime(2026, 3, 17, tzinfo=UTC), "006R1", stage="Closed Won"),
        ],
    )
    clock = Clock(FRIDAYS[-1] + timedelta(hours=2))

    async with instance(settings, clock) as client:
        first = await eventually(lambda: all_snapshots(client), timeout_s=90)

    # The figures moved from week to week: the snapshots are each as of their Friday.
    assert len({str(s["contents"]) for s in first.values()}) > 3
    assert [s["as_of"] for s in first.values()] == list(first)

    # A rebuild: the schema emptied, the group back to the start of its topics.
    await fresh_schema(SPEC, settings.resolved_database_url())
    await admin.reset_group_to_start(
        settings.kafka_bootstrap_servers,
        f"{settings.topic_prefix}renewals",
        [t.name(settings.topic_prefix) for t in SPEC.topics],
    )
    async with instance(settings, clock) as client:
        again = await eventually(lambda: all_snapshots(client), timeout_s=90)

    assert again == first

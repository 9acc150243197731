"""Weekly forecast snapshots: one per scheduled time with two instances and restarts, a
missed week caught up at start with the figures as of its own time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from revops.events.testing import eventually, fresh_schema
from revops.renewals.forecast import catch_up
from revops.renewals.main import SPEC, build_app

from .conftest import ADMIN, publish, renewals_settings
from .renewals_events import opportunity

# Fridays at 18:00 in Los Angeles, either side of the March 2026 change (Sunday 8th).
FRI_6 = datetime(2026, 3, 7, 2, tzinfo=UTC)  # PST
FRI_13 = datetime(2026, 3, 14, 1, tzinfo=UTC)  # PDT
FRI_20 = datetime(2026, 3, 21, 1, tzinfo=UTC)
FRI_27 = datetime(2026, 3, 28, 1, tzinfo=UTC)


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
        async with httpx.AsyncClient(
            transport=transport, base_url="http://renewals", headers=ADMIN
        ) as c:
            yield c


async def scheduled(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/forecast/snapshots")
    assert response.status_code == 200, response.text
    return sorted(s["scheduled_at"] for s in response.json()["items"] if s["scheduled_at"])


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
async def settings(kafka_settings):
    settings = renewals_settings(
        kafka_settings, scheduler_enabled=True, snapshot_first_catch_up_weeks=3
    )
    await fresh_schema(SPEC, settings.resolved_database_url())
    # History before the service ever ran: one deal qualified on Mar 10, one on Mar 16.
    await publish(
        kafka_settings,
        [
            opportunity(
                "s1",
                datetime(2026, 3, 1, tzinfo=UTC),
                "006S1",
                stage="1 - Interest",
                amount="1000",
                owner_id="005A",
                change="created",
            ),
            opportunity("s2", datetime(2026, 3, 10, tzinfo=UTC), "006S1", stage="2 - Qualified"),
            opportunity(
                "s3",
                datetime(2026, 3, 16, tzinfo=UTC),
                "006S2",
                stage="3 - Proposal",
                amount="500",
                owner_id="005B",
                change="created",
            ),
            opportunity("s4", datetime(2026, 3, 24, tzinfo=UTC), "006S1", stage="Closed Won"),
        ],
    )
    return settings


def wire(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_two_instances_and_a_restart_make_one_snapshot_per_week(settings):
    clock = Clock(FRI_20 + timedelta(hours=1))
    expected = [wire(FRI_6), wire(FRI_13), wire(FRI_20)]
    apps = [build_app(settings, clock=clock, scheduler_tick_s=0.2) for _ in range(2)]
    async with AsyncExitStack() as stack:
        # Started one after the other (Alembic's context is per process), then both run.
        for app in apps:
            await stack.enter_async_context(
                LifespanManager(app, startup_timeout=60, shutdown_timeout=30)
            )
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://r", headers=ADMIN
                )
            )
            for app in apps
        ]
        first, second = clients

        async def three() -> None:
            assert await scheduled(first) == expected

        await eventually(three, timeout_s=60)
        # Both instances find the same missed week at the same moment: one snapshot.
        racing = FRI_27 + timedelta(minutes=1)
        taken = await asyncio.gather(
            *(catch_up(app.state.runtime, settings, racing) for app in apps for _ in range(3))
        )
        assert sorted(len(t) for t in taken) == [0, 0, 0, 0, 0, 1]
        await asyncio.sleep(1)  # both schedulers have had every chance to add more
        assert await scheduled(second) == [*expected, wire(FRI_27)]

    # Restarted a week later: only the missed Friday is added.
    clock.now = FRI_27 + timedelta(days=7, minutes=5)
    friday_3_apr = datetime(2026, 4, 4, 1, tzinfo=UTC)
    async with instance(settings, clock) as client:

        async def five() -> None:
            assert await scheduled(client) == [*expected, wire(FRI_27), wire(friday_3_apr)]

        await eventually(five, timeout_s=60)
        # While it runs, the next Friday comes: taken once, at its time.
        clock.now = friday_3_apr + timedelta(days=7, minutes=1)

        async def six() -> None:
            assert (await scheduled(client))[-1] == wire(datetime(2026, 4, 11, 1, tzinfo=UTC))

        await eventually(six, timeout_s=30)
        await asyncio.sleep(0.5)
        assert len(await scheduled(client)) == 6


async def test_missed_weeks_have_the_figures_of_their_own_time(settings):
    clock = Clock(FRI_27 + timedelta(days=14, minutes=2))
    async with instance(settings, clock) as client:
        listing = (await client.get("/forecast/snapshots")).json()
        by_time = {s["scheduled_at"]: s["id"] for s in listing["items"] if s["scheduled_at"]}

        async def contents(moment: datetime) -> dict[str, Any]:
            response = await client.get(f"/forecast/snapshots/{by_time[wire(moment)]}")
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            assert body["as_of"] == wire(moment)
            # Stored as the forecast was written; answered in UTC with Z like every time.
            assert body["contents"]["as_of"] == wire(moment)
            assert body["contents"]["period_start"].endswith("Z")
            contents: dict[str, Any] = body["contents"]
            return contents

        mar_6 = await contents(FRI_6)
        assert mar_6["total"]["open"] == {"count": 1, "amount": "1000.00"}
        assert mar_6["total"]["qualified_pipeline"]["count"] == 0
        mar_13 = await contents(FRI_13)
        assert mar_13["total"]["qualified_pipeline"] == {"count": 1, "amount": "1000.00"}
        assert mar_13["total"]["qualified"] == 1  # qualified in the week before
        assert mar_13["by_owner"]["005A"]["open_by_stage"] == {
            "2 - Qualified": {"count": 1, "amount": "1000.00"}
        }
        mar_20 = await contents(FRI_20)
        assert mar_20["total"]["qualified_pipeline"] == {"count": 2, "amount": "1500.00"}
        assert mar_20["total"]["nbms"] == 1  # the second deal's meeting, on Mar 16
        mar_27 = await contents(FRI_27)
        assert mar_27["total"]["won_this_quarter"] == {"count": 1, "amount": "1000.00"}
        assert mar_27["total"]["qualified_pipeline"] == {"count": 1, "amount": "500.00"}
        assert listing["next_scheduled_at"]  # always announced


async def test_take_one_now_as_of_a_given_time(settings):
    clock = Clock(FRI_27 + timedelta(days=14, minutes=2))
    async with instance(settings, clock) as client:
        response = await client.post("/forecast/snapshots", json={"as_of": "2026-03-17T00:00:00Z"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["scheduled_at"] is None and body["as_of"] == "2026-03-17T00:00:00Z"
        assert body["contents"]["total"]["open"]["amount"] == "1500.00"
        again = await client.get(f"/forecast/snapshots/{body['id']}")
        assert again.json()["contents"] == body["contents"]
        bad = await client.post("/forecast/snapshots", json={"as_of": "2026-03-17T00:00:00"})
        assert bad.status_code == 422


async def test_grouped_sql_and_the_domain_over_rows_give_the_same_figures(settings):
    from revops.events.db import Database
    from revops.renewals.domain.snapshot import forecast_json, periods_for, take_snapshot
    from revops.renewals.forecast import compute_forecast, opportunities_as_of, renewals_as_of

    database = Database(settings.resolved_database_url(), "renewals")
    try:
        for moment in (FRI_6, FRI_13, FRI_20, FRI_27, FRI_27 + timedelta(days=30)):
            start = moment - timedelta(days=7)
            async with database.transaction() as session:
                grouped, count = await compute_forecast(session, settings, moment, start)
                rows = await opportunities_as_of(session, moment)
                renewals = await renewals_as_of(session, moment)
            direct = take_snapshot(rows, renewals, periods_for(moment, start))
            assert forecast_json(grouped) == forecast_json(direct)
            assert count == len(rows)
    finally:
        await database.dispose()

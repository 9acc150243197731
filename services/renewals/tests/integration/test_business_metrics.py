"""Renewals' business figures at /metrics: one renewal counted per Closed Won, however
often its win arrives, and the age of the last scheduled snapshot on the scheduler's
clock (a snapshot taken on request does not reset it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema
from revops.renewals.main import SPEC, build_app

from .conftest import ADMIN, publish, renewals_settings
from .renewals_events import opportunity

pytestmark = pytest.mark.infra

FRI_27 = datetime(2026, 3, 28, 1, tzinfo=UTC)  # Friday 18:00 in Los Angeles


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(FRI_27 + timedelta(minutes=2))


@pytest.fixture(scope="module")
async def client(kafka_settings: KafkaSettings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    settings = renewals_settings(
        kafka_settings, scheduler_enabled=True, snapshot_first_catch_up_weeks=1
    )
    await fresh_schema(SPEC, settings.resolved_database_url())
    app = build_app(settings, clock=clock, scheduler_tick_s=0.2)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://renewals", headers=ADMIN
        ) as c:
            yield c


async def figure(client: httpx.AsyncClient, name: str) -> float | None:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name and sample.labels in ({}, {"schedule": "weekly"}):
                return sample.value
    return None


async def test_a_won_deal_counts_one_renewal_however_often_its_win_arrives(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    before = await figure(client, "revops_renewals_created_total") or 0
    at = datetime(2026, 3, 20, tzinfo=UTC)
    won = [
        opportunity("m1", at, "006M1", stage="2 - Qualified", amount="1200", change="created"),
        opportunity("m2", at + timedelta(hours=1), "006M1", stage="Closed Won"),
        opportunity("m3", at + timedelta(hours=2), "006M1", stage="Closed Won"),
    ]
    await publish(kafka_settings, won)

    async def renewed() -> None:
        r = await client.get("/opportunities/006M1/renewal")
        assert r.status_code == 200, r.text

    await eventually(renewed, timeout_s=30, interval_s=0.1)
    await created(client, before + 1)
    # Delivered again (the same events), then the won amount corrected (the renewal is
    # updated): nothing more is created, nothing more counted.
    await publish(kafka_settings, won)
    await publish(
        kafka_settings,
        [opportunity("m4", at + timedelta(hours=3), "006M1", stage="Closed Won", amount="1300")],
    )

    async def all_applied() -> None:
        r = await client.get("/opportunities/006M1")
        assert r.status_code == 200 and r.json()["amount"] in ("1300", "1300.00"), r.text

    await eventually(all_applied, timeout_s=30, interval_s=0.1)
    await created(client, before + 1)


async def created(client: httpx.AsyncClient, expected: float) -> None:
    """Counted just after the commit that the API already shows: polled, briefly."""

    async def check() -> None:
        assert await figure(client, "revops_renewals_created_total") == expected

    await eventually(check, timeout_s=5)


async def test_the_snapshot_age_runs_on_the_scheduler_clock_from_the_last_scheduled_one(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    async def taken() -> float:
        age = await figure(client, "revops_forecast_snapshot_age_seconds")
        assert age is not None
        return age

    age = await eventually(taken, timeout_s=30, interval_s=0.1)
    answer = await client.get("/forecast/snapshots")
    assert answer.status_code == 200, answer.text
    listing = answer.json()["items"]
    assert any(s["scheduled_at"] for s in listing), listing
    last = max(s["taken_at"] for s in listing if s["scheduled_at"])
    last_taken = datetime.fromisoformat(last.replace("Z", "+00:00"))
    assert age == (clock.now - last_taken).total_seconds()

    r = await client.post("/forecast/snapshots", json={})  # one on request: not the schedule
    assert r.status_code in (200, 201), r.text
    clock.now += timedelta(hours=1)
    assert await figure(client, "revops_forecast_snapshot_age_seconds") == age + 3600

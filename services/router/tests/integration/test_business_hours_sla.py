"""`GET /sla/breaches` in business hours: a queue with a calendar counts only its open
time, so a lead that came on Friday evening breaches on Monday morning, not at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from asgi_lifespan import LifespanManager

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router.main import SPEC, build_app

from .conftest import ADMIN, router_settings
from .router_events import form

pytestmark = pytest.mark.infra

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "time_zone": "Europe/Berlin",
    "shifts": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
}


@pytest.fixture(scope="module")
async def client(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = router_settings(kafka_settings, sla_business_hours={"inbound-EMEA": OFFICE})
    await fresh_schema(SPEC, settings.resolved_database_url())
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://router", headers=ADMIN
        ) as c:
            yield c


async def breaches_of(client: httpx.AsyncClient, email: str, as_of: datetime) -> list[Any]:
    r = await client.get("/sla/breaches", params={"as_of": as_of.isoformat(), "limit": 500})
    assert r.status_code == 200, r.text
    return [(b["kind"], b["took_s"], b["open"]) for b in r.json()["items"] if b["email"] == email]


async def test_a_friday_evening_lead_breaches_on_monday_morning(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    friday = datetime(2026, 12, 4, 16, 58, tzinfo=BERLIN)
    emea, amer = "evening@berlin-gmbh.de", "evening@austin-inc.com"
    await publish(kafka_settings, [form(emea, friday, country="DE"), form(amer, friday)])

    async def both_listed() -> None:
        r = await client.get("/leads", params={"limit": 500})
        assert {emea, amer} <= {lead["email"] for lead in r.json()["items"]}

    await eventually(both_listed, timeout_s=30, interval_s=0.1)
    # Monday 09:03: 2 minutes on Friday and 3 on Monday, the 5-minute target just met.
    monday = datetime(2026, 12, 7, 9, 3, tzinfo=BERLIN)
    assert await breaches_of(client, emea, monday) == []
    # AMER has no calendar: the wall clock, late since Friday 17:03.
    assert await breaches_of(client, amer, monday) == [
        ("first_touch", (monday - friday).total_seconds(), True),
        ("first_status_change", (monday - friday).total_seconds(), True),
    ]
    later = datetime(2026, 12, 7, 9, 4, tzinfo=BERLIN)
    assert await breaches_of(client, emea, later) == [("first_touch", 360.0, True)]

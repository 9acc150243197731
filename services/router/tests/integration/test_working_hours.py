"""Working hours in the running router: a rep's hours come and go with the rep's events,
a lead that comes while nobody is on shift waits, the router routes it when it finds
someone on shift, and a reset rebuilds the hours and the decisions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events.catalogue import FormSubmitted, FormSubmittedEvent, make_event
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.domain.working_hours import WEEKDAYS
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings

from .conftest import ADMIN, reset_router, router_settings
from .rep_helpers import create_reps

pytestmark = pytest.mark.infra

# The rep works every day but yesterday's weekday (UTC), all day: on shift now, off shift
# for a lead dated yesterday, whatever day the test runs.
NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - timedelta(days=1)
HOURS = {
    "time_zone": "UTC",
    "shifts": [
        {
            "days": [d for i, d in enumerate(WEEKDAYS) if i != YESTERDAY.weekday()],
            "start": "00:00",
            "end": "24:00",
        }
    ],
    "holidays": [],
}


@asynccontextmanager
async def running_router(settings: RouterSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://router", headers=ADMIN
        ) as client:
            yield client


def lead_form(email: str, at: datetime) -> FormSubmittedEvent:
    return make_event(
        FormSubmittedEvent,
        id=f"hours-form-{uuid.uuid4().hex}",
        source="hubspot",
        occurred_at=at,
        payload=FormSubmitted(email=email, form_type="ebook", country="US"),
    )


async def lead_of(client: httpx.AsyncClient, email: str, **expected: Any) -> dict[str, Any]:
    async def found() -> dict[str, Any]:
        r = await client.get("/leads", params={"email": email})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == 1, r.json()
        [lead] = r.json()["items"]
        assert {k: lead[k] for k in expected} == expected, lead
        return dict(lead)

    return await eventually(found, timeout_s=60, interval_s=0.1)


async def stored_leads(settings: RouterSettings) -> dict[str, tuple[Any, ...]]:
    engine = create_async_engine(settings.resolved_database_url())
    columns = ("email", "owner_id", "rule", "queue", "turn", "reason")
    async with engine.connect() as conn:
        rows = await conn.execute(select(*(m.leads.c[c] for c in columns)))
        leads = {r.email: tuple(r)[1:] for r in rows}
    await engine.dispose()
    return leads


async def nothing_to_publish(settings: RouterSettings) -> None:
    outbox = m.metadata.tables["router.outbox"]
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        pending = await conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        )
    await engine.dispose()
    assert pending == 0, f"{pending} outbox rows not yet published"


async def test_a_lead_off_shift_waits_and_is_routed_when_someone_is_on_shift(
    own_topics: KafkaSettings,
) -> None:
    settings = router_settings(own_topics, shift_check_s=0.1)
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with running_router(settings) as client:
        for bad, field in (
            ({**HOURS, "time_zone": "Mars/Olympus"}, "time_zone"),
            ({**HOURS, "shifts": [{"days": ["mon"], "start": "9am", "end": "17:00"}]}, "start"),
            ({**HOURS, "lunch": "12:00"}, "lunch"),
        ):
            body = {"id": "H0", "role": "SDR", "working_hours": bad}
            r = await client.post("/reps", json=body)
            assert r.status_code == 422, r.text
            assert field in r.text
        rep = {"id": "H1", "role": "SDR", "region": "AMER", "certified": True}
        await create_reps(client, [{**rep, "working_hours": HOURS}])
        assert (await client.get("/reps/H1")).json()["working_hours"] == HOURS
        assert (await client.get("/reps/H0")).status_code == 404

        await publish(own_topics, [lead_form("late@a-corp.com", YESTERDAY + timedelta(hours=12))])
        late = await lead_of(client, "late@a-corp.com", owner_id=None)
        assert late["reason"] == "Nobody eligible in inbound-AMER on shift"
        await publish(own_topics, [lead_form("early@b-corp.com", TODAY + timedelta(seconds=30))])
        await lead_of(client, "early@b-corp.com", owner_id="H1", rule="round_robin")
        # The router looks for reps coming on shift all along; H1 was on shift at every
        # look, so nobody came on shift and the late lead still waits.
        assert (await lead_of(client, "late@a-corp.com"))["owner_id"] is None

    # A router starting does not know who was on shift before: H1, on shift now, takes
    # the lead that waited.
    async with running_router(settings) as client:
        routed = await lead_of(client, "late@a-corp.com", owner_id="H1", rule="round_robin")
        assert routed["reason"].endswith("(routed once someone could take it)")
        # The decision reaches the routing topic through the outbox: a reset before then
        # would empty the outbox, and the rebuild could not know it.
        await eventually(lambda: nothing_to_publish(settings), timeout_s=30, interval_s=0.1)
    before = await stored_leads(settings)

    # Reset: the schema emptied and the group rewound, as `revops reset router` does.
    await reset_router(settings)
    async with running_router(settings) as client:
        # Each lead as it ended before the reset: the late one is decided again by the
        # rebuild once H1's hours are applied, a moment after the form is.
        for email, (owner_id, rule, *_) in before.items():
            await lead_of(client, email, owner_id=owner_id, rule=rule)
        assert (await client.get("/reps/H1")).json()["working_hours"] == HOURS
    assert await stored_leads(settings) == before

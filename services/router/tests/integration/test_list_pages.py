"""Every router list answers one envelope (docs/API.md): the page's items, the total the
filters match on every page together, and the limit and offset asked for. The rows are
written straight into the router's schema (no consumer, no relay), so the totals are
known exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import fresh_schema, running_app
from revops.router.main import SPEC, build_app

from .conftest import ADMIN, router_settings

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC)
LEADS = 7  # lead 0 the oldest; the even ones in inbound-AMER, touched within a minute
LEAD = """
INSERT INTO router.leads (id, email, match, owner_id, rule, reason, queue, priority,
    created_at, first_touch_at, source_event_id)
VALUES ($1, $2, 'none', 'R1', 'round_robin', 'seeded', $3, 'normal', $4, $5, $1)
"""
REP = "INSERT INTO router.reps (id, name, role, region) VALUES ($1, $1, $2, 'AMER')"
WRITEBACK = """
INSERT INTO router.outbox (event_id, destination, topic, key, value, failed_at)
VALUES ($1, $2, '', $3, '{}'::bytea, $4)
"""


async def seed(url: str) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for n in range(LEADS):
            created = NOW - timedelta(days=2, hours=LEADS - n)
            queue = "inbound-AMER" if n % 2 == 0 else "inbound-EMEA"
            touched = created + timedelta(minutes=1) if n % 2 == 0 else None
            await connection.execute(LEAD, f"L{n}", f"l{n}@pages.example", queue, created, touched)
        for rep_id, role in (("R1", "SDR"), ("R2", "SDR"), ("R3", "AE")):
            await connection.execute(REP, rep_id, role)
        for n in range(5):  # 0, 2 and 4 gave up; one of them not a CRM's
            destination = "kafka" if n == 4 else "hubspot_owner"
            failed = NOW if n % 2 == 0 else None
            await connection.execute(WRITEBACK, f"wb-{n}", destination, f"L{n}", failed)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def client(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = router_settings(kafka_settings, consumer_enabled=False, outbox_enabled=False)
    await fresh_schema(SPEC, settings.resolved_database_url())
    await seed(settings.resolved_database_url())
    async with running_app(build_app(settings), base_url="http://router", headers=ADMIN) as c:
        yield c


async def page(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"items", "total", "limit", "offset"}, body
    return body


async def test_leads_pages_carry_the_total_of_every_page(client: httpx.AsyncClient) -> None:
    first = await page(client, "/leads", limit=3)
    assert [x["id"] for x in first["items"]] == ["L0", "L1", "L2"]
    assert (first["total"], first["limit"], first["offset"]) == (LEADS, 3, 0)
    last = await page(client, "/leads", limit=3, offset=6, newest_first="true")
    assert [x["id"] for x in last["items"]] == ["L0"] and last["total"] == LEADS
    queue = await page(client, "/leads", queue="inbound-AMER", limit=1, offset=1)
    assert [x["id"] for x in queue["items"]] == ["L2"] and queue["total"] == 4
    beyond = await page(client, "/leads", offset=100)
    assert beyond["items"] == [] and beyond["total"] == LEADS


async def test_reps_pages_carry_the_total(client: httpx.AsyncClient) -> None:
    sdrs = await page(client, "/reps", role="SDR", limit=1)
    assert [x["id"] for x in sdrs["items"]] == ["R1"] and sdrs["total"] == 2
    everyone = await page(client, "/reps")
    assert [x["id"] for x in everyone["items"]] == ["R1", "R2", "R3"] and everyone["total"] == 3


async def test_writeback_pages_count_only_the_crms_write_backs(client: httpx.AsyncClient) -> None:
    failed = await page(client, "/writebacks", limit=1)
    assert [x["event_id"] for x in failed["items"]] == ["wb-0"] and failed["total"] == 2
    every = await page(client, "/writebacks", status="all", limit=2, offset=2)
    assert [x["event_id"] for x in every["items"]] == ["wb-2", "wb-3"] and every["total"] == 4


async def test_breach_pages_count_every_breach_not_every_lead(client: httpx.AsyncClient) -> None:
    # Every lead missed the status change (none changed it in 2 days); the odd ones, never
    # touched, missed the first touch too: 7 + 3 breaches.
    as_of = NOW.isoformat()  # one moment, so an open breach took as long on every page
    whole = await page(client, "/sla/breaches", as_of=as_of, limit=500)
    assert whole["total"] == len(whole["items"]) == LEADS + 3
    assert [(b["lead_id"], b["kind"]) for b in whole["items"][:3]] == [
        ("L0", "first_status_change"),
        ("L1", "first_touch"),
        ("L1", "first_status_change"),
    ]
    pages = [await page(client, "/sla/breaches", as_of=as_of, limit=4, offset=o) for o in (0, 4, 8)]
    assert {p["total"] for p in pages} == {LEADS + 3}
    assert [b for p in pages for b in p["items"]] == whole["items"]
    since = (NOW - timedelta(days=2, hours=2)).isoformat()
    recent = await page(client, "/sla/breaches", as_of=as_of, since=since, limit=1)
    # Leads 5 and 6 arrived since then: 6 missed only the status change, 5 both.
    assert recent["total"] == 3 and len(recent["items"]) == 1

"""The router's lists with 100,000 leads (and as many outbox rows) read indexes, not the
whole table: the plan of every page and of every total (EXPLAIN) has no sequential scan
of ``leads`` or ``outbox``, and the SLA breaches' total read from indexes is exactly the
count of the breach conditions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from revops.events.contract import count_of
from revops.events.testing import plan_of, seeded_database
from revops.router import models as m
from revops.router.api import leads_order, leads_query
from revops.router.domain.rules import RoutingPolicy
from revops.router.main import SPEC
from revops.router.sla_api import breach_page, count_breaches, late_conditions
from revops.router.writeback_api import WritebackStatus, writebacks_query

pytestmark = pytest.mark.infra

LEADS = 100_000
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
# Spread over 90 days; touches, status changes and conversions in time, late and never,
# so each part of the breaches' total has rows to find (and to miss).
SEED = """
INSERT INTO router.leads (id, email, match, region, country, form_type, owner_id,
    owner_role, rule, reason, queue, priority, created_at, routed_at, first_touch_at,
    first_status_change_at, converted_at, source_event_id)
SELECT 'L' || n, 'lead' || n || '@company' || (n % 5000) || '.example', 'none', 'AMER', 'US',
       'demo_request', CASE WHEN n % 10 = 0 THEN NULL ELSE 'rep-' || (n % 40) END, 'SDR',
       CASE WHEN n % 10 = 0 THEN 'unassigned' ELSE 'round_robin' END, 'seeded',
       CASE WHEN n % 10 = 0 THEN 'unassigned' WHEN n % 2 = 0 THEN 'inbound-AMER'
            ELSE 'inbound-EMEA' END,
       'normal', at, at,
       CASE n % 4 WHEN 0 THEN at + interval '1 minute' WHEN 1 THEN at + interval '2 hours' END,
       CASE n % 5 WHEN 0 THEN at + interval '1 hour' WHEN 1 THEN at + interval '3 days' END,
       CASE n % 7 WHEN 0 THEN at + interval '30 minutes' WHEN 1 THEN at + interval '2 days' END,
       'ev-' || n
  FROM generate_series(1, $1) AS n,
       LATERAL (SELECT $2::timestamptz - make_interval(secs => n * 77.76) AS at) AS arrival
"""


# A busy router's outbox: its events waiting or kept after sending, and a few owner
# write-backs among them.
OUTBOX = """
INSERT INTO router.outbox (event_id, destination, topic, key, value, sent_at, failed_at)
SELECT 'ev-' || n, CASE WHEN n % 400 = 0 THEN 'hubspot_owner' ELSE 'kafka' END, 't',
       'k' || n, '{}'::bytea, CASE WHEN n % 3 = 1 THEN $2::timestamptz END,
       CASE WHEN n % 3 = 0 AND n % 400 = 0 THEN $2::timestamptz END
  FROM generate_series(1, $1) AS n
"""


@pytest.fixture(scope="module")
async def database(infra: None) -> AsyncIterator[AsyncConnection]:
    seeds = [(SEED, LEADS, NOW), (OUTBOX, LEADS, NOW)]
    async with seeded_database(SPEC, seeds, ["leads", "outbox"]) as connection:
        yield connection


def assert_reads_indexes(plan: str) -> None:
    assert "Seq Scan on leads" not in plan, plan
    assert "Index" in plan, plan


FILTERS: dict[str, dict[str, str]] = {
    "all": {},
    "queue": {"queue": "inbound-AMER"},
    "owner": {"owner_id": "rep-7"},
    "rule": {"rule": "unassigned"},
    "email": {"email": "lead77@company77.example"},
}


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("newest_first", [False, True])
async def test_a_page_of_leads_and_its_total_read_indexes(
    database: AsyncConnection, name: str, newest_first: bool
) -> None:
    query = leads_query(**FILTERS[name])
    page = query.order_by(*leads_order(newest_first)).limit(100).offset(100)
    assert_reads_indexes(await plan_of(database, page))
    assert_reads_indexes(await plan_of(database, count_of(query)))


async def test_the_total_of_a_queue_is_counted_from_its_index_alone(
    database: AsyncConnection,
) -> None:
    plan = await plan_of(database, count_of(leads_query(queue="inbound-EMEA")))
    assert "Index Only Scan using ix_leads_queue" in plan, plan


@pytest.mark.parametrize("since", [None, NOW - timedelta(days=30)])
async def test_a_page_of_breaches_and_their_total_read_indexes(
    database: AsyncConnection, since: datetime | None
) -> None:
    policy = RoutingPolicy()
    page = breach_page(policy, NOW, since).limit(100).offset(1000)
    assert_reads_indexes(await plan_of(database, page))
    total = await plan_of(database, count_breaches(policy, NOW, since))
    assert_reads_indexes(total)
    for index in INDEX_ONLY:
        assert f"Index Only Scan using {index} on leads" in total, total


# The parts of the breaches' total that grow with the leads, each counted from its index.
INDEX_ONLY = (
    "ix_leads_never_touched",
    "ix_leads_status_never_changed",
    "ix_leads_first_touch_took",
    "ix_leads_first_status_change_took",
)


@pytest.mark.parametrize("status", ["failed", "pending", "sent", "all"])
async def test_a_page_of_write_backs_and_its_total_read_the_write_back_index(
    database: AsyncConnection, status: WritebackStatus
) -> None:
    query = writebacks_query(status)
    for statement in (query.order_by(m.outbox.c.id).limit(100), count_of(query)):
        plan = await plan_of(database, statement)
        assert "Seq Scan on outbox" not in plan, plan
        assert "outbox_writebacks" in plan, plan


def every_lead_judged(policy: RoutingPolicy, now: datetime, since: datetime | None) -> Any:
    """The breaches' total as each lead's conditions give it: the rule the index-read
    total must equal."""
    first_touch_late, status_late = late_conditions(policy, now)
    arrived = [m.leads.c.created_at <= now]
    if since is not None:
        arrived.append(m.leads.c.created_at >= since)
    return select(func.count().filter(first_touch_late) + func.count().filter(status_late)).where(
        *arrived
    )


# Now, and moments when some conversions, touches and status changes had not yet happened
# (as_of in the past), with and without ``since``.
MOMENTS = [
    (NOW, None),
    (NOW - timedelta(days=10, minutes=17), None),
    (NOW - timedelta(days=45, hours=5), NOW - timedelta(days=60)),
    (NOW - timedelta(days=89, hours=23), None),
    (NOW + timedelta(days=3), NOW - timedelta(days=1)),
]


@pytest.mark.parametrize(("now", "since"), MOMENTS)
async def test_the_breaches_total_from_indexes_is_the_count_of_every_lead_judged(
    database: AsyncConnection, now: datetime, since: datetime | None
) -> None:
    policy = RoutingPolicy()
    expected = await database.scalar(every_lead_judged(policy, now, since))
    assert expected, "the seed must give breaches to count"
    assert await database.scalar(count_breaches(policy, now, since)) == expected
    other = RoutingPolicy(
        first_touch_target=timedelta(hours=3), first_status_change_limit=timedelta(days=2)
    )
    assert await database.scalar(count_breaches(other, now, since)) == await database.scalar(
        every_lead_judged(other, now, since)
    )

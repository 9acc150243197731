"""Renewals' lists with 100,000 opportunities (and tens of thousands of accounts, renewals
and onboardings) read indexes: no page and no total of a list (EXPLAIN) scans its whole
table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from revops.events.contract import count_of
from revops.events.testing import plan_of, seeded_database
from revops.renewals import models as m
from revops.renewals.api import renewals_query
from revops.renewals.lists_api import (
    OPPORTUNITY_ORDER,
    AccountTier,
    OpportunityFilters,
    accounts_query,
    opportunities_query,
)
from revops.renewals.main import SPEC

pytestmark = pytest.mark.infra

ROWS = 100_000
SEED = [
    """INSERT INTO renewals.opportunities (opportunity_id, last_at, last_event_id, account_id,
           owner_id, stage, stage_kind, forecast_category, close_date)
       SELECT '006' || n, now(), 'ev-' || n, '001' || (n % 5000), '005' || (n % 50), 'stage',
              (ARRAY['open', 'won', 'lost'])[n % 3 + 1],
              (ARRAY['Pipeline', 'Commit', 'Closed'])[n % 3 + 1],
              DATE '2026-01-01' + (n % 730)
         FROM generate_series(1, $1) AS n""",
    """INSERT INTO renewals.accounts (account_id, last_at, tier, users)
       SELECT '001' || n, now(),
              (ARRAY['diamond', 'pearl', 'sapphire', 'ruby', 'quartz', NULL])[n % 6 + 1], n
         FROM generate_series(1, $1 / 4) AS n""",
    """INSERT INTO renewals.renewals (renewal_id, source_opportunity_id, close_date, pipeline,
           opportunity_type, name, status, created_at, updated_at, owner_id)
       SELECT 'R' || n, '006' || n, DATE '2026-01-01' + (n % 730), 'Renewals', 'Renewal',
              'renewal ' || n, (ARRAY['open', 'won', 'lost', 'cancelled'])[n % 4 + 1], now(),
              now(), '005' || (n % 50)
         FROM generate_series(1, $1 / 4) AS n""",
    """INSERT INTO renewals.onboardings (id, account_id, opened_at, tier_to)
       SELECT 'O' || n, '001' || n, now() - make_interval(mins => n), 'ruby'
         FROM generate_series(1, $1 / 4) AS n""",
]
TABLES = ("opportunities", "accounts", "renewals", "onboardings")


@pytest.fixture(scope="module")
async def database(infra: None) -> AsyncIterator[AsyncConnection]:
    seeds = [(statement, ROWS) for statement in SEED]
    async with seeded_database(SPEC, seeds, TABLES) as connection:
        yield connection


async def assert_reads_indexes(connection: AsyncConnection, statement: Any, table: str) -> None:
    plan = await plan_of(connection, statement)
    assert f"Seq Scan on {table}" not in plan, plan
    assert "Index" in plan, plan


OPPORTUNITY_FILTERS: dict[str, dict[str, Any]] = {
    "all": {},
    "open": {"status": "open"},
    "commit": {"forecast_category": "Commit"},
    "commit, a quarter": {
        "forecast_category": "Commit",
        "close_from": date(2026, 4, 1),
        "close_before": date(2026, 7, 1),
    },
    "account": {"account_id": "0017"},
    "owner": {"owner_id": "0057"},
    "a quarter": {"close_from": date(2026, 4, 1), "close_before": date(2026, 7, 1)},
}


@pytest.mark.parametrize("name", sorted(OPPORTUNITY_FILTERS))
async def test_a_page_of_opportunities_and_its_total_read_indexes(
    database: AsyncConnection, name: str
) -> None:
    query = opportunities_query(OpportunityFilters(**OPPORTUNITY_FILTERS[name]))
    page = query.order_by(*OPPORTUNITY_ORDER).limit(100).offset(100)
    await assert_reads_indexes(database, page, "opportunities")
    await assert_reads_indexes(database, count_of(query), "opportunities")


@pytest.mark.parametrize("tier", [None, "diamond", "none"])
async def test_a_page_of_accounts_and_its_total_read_indexes(
    database: AsyncConnection, tier: AccountTier | None
) -> None:
    query = accounts_query(tier)
    page = query.order_by(m.accounts.c.account_id).limit(100)
    await assert_reads_indexes(database, page, "accounts")
    # Every account counted reads every row either way, and an account's row is about as
    # narrow as its key's index entry: Postgres rightly reads the table then. A tier's
    # total reads its index.
    if tier is not None:
        await assert_reads_indexes(database, count_of(query), "accounts")


@pytest.mark.parametrize("status", ["open", "all"])
async def test_a_page_of_renewals_and_its_total_read_indexes(
    database: AsyncConnection, status: str
) -> None:
    query = renewals_query(None, None, status)
    page = query.order_by(m.renewals.c.close_date, m.renewals.c.renewal_id).limit(100)
    await assert_reads_indexes(database, page, "renewals")
    await assert_reads_indexes(database, count_of(query), "renewals")


async def test_a_page_of_onboardings_reads_its_index(database: AsyncConnection) -> None:
    o = m.onboardings.c
    page = select(m.onboardings).order_by(o.opened_at.desc(), o.id).limit(100)
    await assert_reads_indexes(database, page, "onboardings")

"""The campaign list with 100,000 touches groups them from the campaign index: neither a
page nor the total (EXPLAIN) scans the touches table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from revops.attribution import models
from revops.attribution.campaigns_api import campaigns_query
from revops.attribution.main import SPEC
from revops.events.contract import count_of
from revops.events.db import connect_args
from revops.events.testing import database_url_for_tests, fresh_schema

pytestmark = pytest.mark.infra

# Forms in 500 campaigns (one in ten without one) and sign-ups, over 100 days, each with
# the page and referrer a form carries.
SEED = """
INSERT INTO attribution.touches (touch_id, person_id, kind, form_id, form_type, campaign_id,
    page_url, referrer, occurred_at)
SELECT 'ev-' || n, 'p' || (n % 20000) || '@example.com',
       CASE WHEN n % 7 = 0 THEN 'cloud_signup' ELSE 'form' END, 'form-' || (n % 40), 'webinar',
       CASE WHEN n % 7 = 0 OR n % 10 = 0 THEN NULL ELSE 'cmp-' || (n % 500) END,
       'https://www.example.com/webinars/' || (n % 500)
           || '?utm_source=newsletter&utm_medium=email&utm_campaign=autumn-' || (n % 500),
       'https://mail.example.net/inbox/' || md5(n::text),
       TIMESTAMPTZ '2026-09-01 00:00Z' + make_interval(secs => n * 86.4)
  FROM generate_series(1, 100000) AS n
"""


class Explain(Executable, ClauseElement):
    """``EXPLAIN`` of a statement, with the statement's own parameters."""

    inherit_cache = False

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)


@pytest.fixture(scope="module")
async def database(infra: None) -> AsyncIterator[AsyncConnection]:
    url = database_url_for_tests("attribution")
    await fresh_schema(SPEC, url)
    engine = create_async_engine(url, connect_args=connect_args(url, "attribution"))
    raw = await engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        await driver.execute(SEED)
        # What autovacuum does to a table that grew: statistics and the visibility map.
        await driver.execute("VACUUM ANALYZE attribution.touches")
    finally:
        raw.close()
    async with engine.connect() as connection:
        yield connection
    await engine.dispose()


@pytest.mark.parametrize("since", [None, datetime(2026, 11, 20, tzinfo=UTC)])
async def test_a_page_of_campaigns_and_their_total_read_the_campaign_index(
    database: AsyncConnection, since: datetime | None
) -> None:
    query = campaigns_query(since)
    page = query.order_by(models.touches.c.campaign_id).limit(100).offset(100)
    for statement in (page, count_of(query)):
        plan = "\n".join(row[0] for row in await database.execute(Explain(statement)))
        assert "Seq Scan on touches" not in plan, plan
        assert "touches_campaign" in plan, plan

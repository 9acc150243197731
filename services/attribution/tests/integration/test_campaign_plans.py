"""The campaign list with 100,000 touches groups them from the campaign index: neither a
page nor the total (EXPLAIN) scans the touches table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from revops.attribution import models
from revops.attribution.campaigns_api import campaigns_query
from revops.attribution.main import SPEC
from revops.events.contract import count_of
from revops.events.testing import plan_of, seeded_database

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


@pytest.fixture(scope="module")
async def database(infra: None) -> AsyncIterator[AsyncConnection]:
    async with seeded_database(SPEC, [(SEED,)], ["touches"]) as connection:
        yield connection


@pytest.mark.parametrize("since", [None, datetime(2026, 11, 20, tzinfo=UTC)])
async def test_a_page_of_campaigns_and_their_total_read_the_campaign_index(
    database: AsyncConnection, since: datetime | None
) -> None:
    query = campaigns_query(since)
    page = query.order_by(models.touches.c.campaign_id).limit(100).offset(100)
    for statement in (page, count_of(query)):
        plan = await plan_of(database, statement)
        assert "Seq Scan on touches" not in plan, plan
        assert "touches_campaign" in plan, plan

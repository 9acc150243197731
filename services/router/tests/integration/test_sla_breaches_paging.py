"""`GET /sla/breaches` pages breaches, not leads: `limit=N` answers at most N rows even
where each lead breaches both SLAs, and the pages together list every breach once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

from .router_events import form

pytestmark = pytest.mark.infra


async def test_a_page_of_n_breaches_has_n_rows_and_the_pages_list_each_once(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    # Two days old and never touched: each lead breaches both SLAs.
    created = datetime.now(UTC) - timedelta(days=2)
    emails = [f"late{i}@paging{i}.example" for i in range(5)]
    await publish(
        kafka_settings,
        [form(email, created + timedelta(minutes=i)) for i, email in enumerate(emails)],
    )

    async def all_listed() -> list[dict[str, object]]:
        r = await client.get("/sla/breaches", params={"limit": 500})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == 2 * len(emails), r.json()["items"]
        return list(r.json()["items"])

    everything = await eventually(all_listed, timeout_s=30, interval_s=0.2)
    assert [b["kind"] for b in everything[:2]] == ["first_touch", "first_status_change"]
    pages = []
    for offset in range(0, len(everything), 3):
        r = await client.get("/sla/breaches", params={"limit": 3, "offset": offset})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= 3
        assert r.json()["total"] == len(everything)
        pages.extend(r.json()["items"])
    key = [(b["lead_id"], b["kind"]) for b in pages]
    assert key == [(b["lead_id"], b["kind"]) for b in everything]
    assert len(set(key)) == len(everything)

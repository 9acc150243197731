"""The snapshot list carries each snapshot's totals by forecast category (a weekly trend
is one request), the same as the snapshot's own contents, money with two decimals."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually

from .conftest import publish
from .renewals_events import opportunity

pytestmark = pytest.mark.infra


async def test_the_list_carries_the_totals_by_category_of_each_snapshot(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique
) -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)
    ids = [unique("006T1"), unique("006T2")]
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("t1"), at, ids[0], stage="2 - Qualified", amount="1200.5", change="created"
            ),
            opportunity(
                unique("t2"), at, ids[1], stage="3 - Proposal", amount="99", change="created"
            ),
        ],
    )

    async def known() -> None:
        for opportunity_id in ids:
            r = await client.get(f"/opportunities/{opportunity_id}")
            assert r.status_code == 200, r.text

    await eventually(known, timeout_s=30)
    taken = []
    for as_of in ("2026-03-03T00:00:00Z", "2026-03-10T00:00:00Z"):
        r = await client.post("/forecast/snapshots", json={"as_of": as_of})
        assert r.status_code == 201, r.text
        taken.append(r.json())

    page = (await client.get("/forecast/snapshots", params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["total"] >= len(taken)
    listed = {s["id"]: s for s in (await client.get("/forecast/snapshots")).json()["items"]}
    assert len(listed) == page["total"]
    for snapshot in taken:
        summary = listed[snapshot["id"]]
        inside = snapshot["contents"]["total"]["open_by_category"]
        assert inside, "the snapshot should hold open pipeline"
        assert summary["open_by_category"] == snapshot["open_by_category"]
        assert set(summary["open_by_category"]) == set(inside)
        for category, bucket in inside.items():
            listed_bucket = summary["open_by_category"][category]
            assert listed_bucket["count"] == bucket["count"]
            assert listed_bucket["amount"] == f"{float(bucket['amount']):.2f}"
        assert all(
            b["amount"].count(".") == 1 and len(b["amount"].split(".")[1]) == 2
            for b in summary["open_by_category"].values()
        )

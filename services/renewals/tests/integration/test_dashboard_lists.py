"""The lists dashboards read: opportunities as they stand and accounts with their tier, in
the read contract's envelope, filtered, paged with an exact total, unknown filter values
refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually

from .conftest import publish
from .renewals_events import account, opportunity

pytestmark = pytest.mark.infra

AT = datetime(2026, 5, 4, 15, tzinfo=UTC)


async def listed(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    return page


async def test_opportunities_by_close_date_filtered_and_paged(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique
) -> None:
    account_id = unique("001DASH")
    stages = {"a": "2 - Qualified", "b": "Closed Won", "c": "3 - Proposal", "d": "Closed Lost"}
    closing = {"a": date(2026, 6, 30), "b": date(2026, 5, 1), "c": date(2026, 7, 15), "d": None}
    ids = {key: unique(f"006D{key}") for key in stages}
    await publish(
        kafka_settings,
        [
            opportunity(
                unique(f"ev-{key}"),
                AT,
                ids[key],
                account_id=account_id,
                stage=stages[key],
                amount="1000.5",
                owner_id="005OWNER",
                close_date=closing[key],
                change="created",
            )
            for key in stages
        ],
    )

    async def all_four() -> dict[str, Any]:
        page = await listed(client, "/opportunities", account_id=account_id)
        assert page["total"] == 4, page
        return page

    page = await eventually(all_four, timeout_s=30)
    # By close date, the one without a date last.
    assert [o["id"] for o in page["items"]] == [ids["b"], ids["a"], ids["c"], ids["d"]]
    won = page["items"][0]
    assert (won["status"], won["forecast_category"], won["amount"]) == ("won", "Closed", "1000.50")
    assert won["close_date"] == "2026-05-01" and won["is_renewal"] is False

    open_ones = await listed(client, "/opportunities", account_id=account_id, status="open")
    assert [o["id"] for o in open_ones["items"]] == [ids["a"], ids["c"]]
    assert open_ones["total"] == 2
    window = await listed(
        client,
        "/opportunities",
        account_id=account_id,
        close_from="2026-05-01",
        close_before="2026-07-15",
    )
    assert [o["id"] for o in window["items"]] == [ids["b"], ids["a"]]
    second = await listed(client, "/opportunities", account_id=account_id, limit=1, offset=1)
    assert ([o["id"] for o in second["items"]], second["total"]) == ([ids["a"]], 4)
    # Each one's detail starts with its line: the same fields with the same values.
    for line in page["items"]:
        detail = (await client.get(f"/opportunities/{line['id']}")).json()
        assert {k: detail[k] for k in line} == line
        assert {"history", "stage_order", "nbm_at", "cycle_time_days"} <= set(detail)
    r = await client.get("/opportunities", params={"status": "pending"})
    assert r.status_code == 422 and "open" in r.text, r.text


async def test_accounts_with_their_tier_filtered_by_tier(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique
) -> None:
    big, small = unique("001BIG"), unique("001SMALL")
    await publish(
        kafka_settings,
        [
            account(unique("ev-big"), AT, big, users=6000, plan="Premium", iacv="600000"),
            account(unique("ev-small"), AT, small, users=10, plan="Premium", iacv="1200"),
        ],
    )

    async def both() -> dict[str, dict[str, Any]]:
        page = await listed(client, "/accounts", limit=500)
        found = {a["id"]: a for a in page["items"] if a["id"] in (big, small)}
        assert len(found) == 2, page
        return found

    found = await eventually(both, timeout_s=30)
    assert (found[big]["tier"], found[big]["users"], found[big]["iacv"]) == (
        "diamond",
        6000,
        "600000.00",
    )
    assert found[small]["tier"] == "quartz"
    diamonds = await listed(client, "/accounts", tier="diamond", limit=500)
    assert big in {a["id"] for a in diamonds["items"]}
    assert small not in {a["id"] for a in diamonds["items"]}
    assert diamonds["total"] == len(diamonds["items"])
    r = await client.get("/accounts", params={"tier": "gold"})
    assert r.status_code == 422 and "diamond" in r.text, r.text

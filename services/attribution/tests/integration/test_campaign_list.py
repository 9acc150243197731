"""The campaign list dashboards read: each campaign people responded to, with its members,
responses and the opportunities it influenced, in the read contract's envelope, paged
with an exact total and filtered by activity."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

pytestmark = pytest.mark.infra


async def campaigns(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/campaigns", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    return page


async def test_campaigns_with_members_responses_and_influence(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, story: Any, build: Any, unique
) -> None:
    dave = f"{unique('dave')}@elsewhere.example"
    extra = unique("cmp-extra")
    responses = [
        build.form(unique("x1"), dave, build.day(44), "webinar", extra),
        build.form(unique("x2"), dave, build.day(45), "webinar", extra),
    ]
    await publish(kafka_settings, [*story.events, *responses])

    async def decided() -> dict[str, dict[str, Any]]:
        page = await campaigns(client)
        by_id = {c["campaign_id"]: c for c in page["items"]}
        assert page["total"] == 4 and by_id.get("cmp-demo", {}).get("opportunities") == 1, page
        assert by_id["cmp-webinar"]["opportunities"] == 1, page
        assert by_id[extra]["touches"] == 2, page  # both of Dave's responses applied
        return by_id

    by_id = await eventually(decided, timeout_s=30)
    assert list(by_id) == ["cmp-demo", "cmp-ebook", extra, "cmp-webinar"]
    assert by_id[extra]["members"] == 1
    assert by_id[extra]["opportunities"] == 0
    assert by_id[extra]["first_touch_at"] == build.day(44).isoformat().replace("+00:00", "Z")
    assert by_id[extra]["last_touch_at"] == build.day(45).isoformat().replace("+00:00", "Z")
    assert by_id["cmp-ebook"]["opportunities"] == 0  # 41 days before: out of the window

    page = await campaigns(client, limit=2, offset=1)
    assert ([c["campaign_id"] for c in page["items"]], page["total"]) == (["cmp-ebook", extra], 4)
    since = build.day(39).isoformat().replace("+00:00", "Z")
    active = await campaigns(client, active_since=since)
    assert ([c["campaign_id"] for c in active["items"]], active["total"]) == (
        ["cmp-demo", extra],
        2,
    )
    r = await client.get("/campaigns", params={"active_since": "2026-05-10T00:00:00"})
    assert r.status_code == 422, r.text

"""Requests that ended in a 500 until tests/hostile/test_openapi.py found them: each is now
refused with a 422 in FastAPI's own shape (the one the OpenAPI document declares), and
the value just inside each limit is still answered."""

from __future__ import annotations

import httpx

from revops.events.service import MAX_OFFSET


def refused(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == list(loc) and error["msg"] and error["type"], error


async def test_the_pipeline_as_of_a_moment_outside_the_crm_range_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # A week before the first moment is still a date Python can hold.
    r = await client.get("/pipeline", params={"as_of": "1700-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    for moment in ("0001-01-01T00:00:00Z", "1699-12-31T23:59:59Z", "1700-01-01T00:00:00+00:01"):
        refused(await client.get("/pipeline", params={"as_of": moment}), "query", "as_of")
    refused(
        await client.get(
            "/pipeline/metrics", params={"from": "2026-01-01T00:00:00Z", "to": "9999-12-31T23:00Z"}
        ),
        "query",
        "to",
    )
    refused(
        await client.get("/forecast/snapshots", params={"from": "0001-01-01T00:00:00Z"}),
        "query",
        "from",
    )


async def test_a_snapshot_as_of_a_moment_outside_the_crm_range_is_refused(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/forecast/snapshots", json={"as_of": "0001-01-01T00:00:00Z"})
    refused(r, "body", "as_of")
    assert (await client.get("/forecast/snapshots")).json()["items"] == []  # nothing taken


async def test_a_moment_without_a_zone_is_refused_in_the_documented_shape(
    client: httpx.AsyncClient,
) -> None:
    naive = "2026-03-01T00:00:00"
    refused(await client.get("/pipeline", params={"as_of": naive}), "query", "as_of")
    refused(await client.post("/forecast/snapshots", json={"as_of": naive}), "body", "as_of")
    r = await client.get("/pipeline/metrics", params={"from": "2026-03-02T00:00:00Z", "to": naive})
    refused(r, "query", "to")
    r = await client.get(
        "/pipeline/metrics", params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    )
    refused(r, "query", "to")


async def test_a_nul_character_names_nothing(client: httpx.AsyncClient) -> None:
    paths = {
        "/opportunities/006%00": "opportunity_id",
        "/opportunities/006%00/renewal": "opportunity_id",
        "/forecast/snapshots/s%00": "snapshot_id",
        "/accounts/001%00/tier": "account_id",
    }
    for path, name in paths.items():
        refused(await client.get(path), "path", name)
    for path, name in (("/renewals", "owner_id"), ("/renewals", "status")):
        refused(await client.get(path, params={name: "a\x00"}), "query", name)
    refused(await client.get("/onboardings", params={"account_id": "a\x00"}), "query", "account_id")


async def test_an_offset_past_a_billion_is_refused(client: httpx.AsyncClient) -> None:
    for path in ("/renewals", "/forecast/snapshots", "/onboardings"):
        assert (await client.get(path, params={"offset": MAX_OFFSET})).status_code == 200
        refused(await client.get(path, params={"offset": MAX_OFFSET + 1}), "query", "offset")
    refused(await client.get("/renewals", params={"offset": 2**63}), "query", "offset")


async def test_an_unknown_status_is_refused_naming_it_and_a_broken_body_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/renewals", params={"status": "closed"})
    refused(r, "query", "status")
    assert "unknown value 'closed'" in r.json()["detail"][0]["msg"]
    assert "'cancelled'" in r.json()["detail"][0]["msg"]
    for status in ("open", "cancelled", "won", "lost", "all"):
        assert (await client.get("/renewals", params={"status": status})).status_code == 200
    r = await client.post(
        "/forecast/snapshots", content=b"{as_of: 1}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "the body is not JSON" in r.json()["detail"], r.text

"""Requests that ended in a 500 until tests/hostile/test_openapi.py found them: each is now
refused with a 422 in FastAPI's own shape (the one the OpenAPI document declares), and
the value just inside each limit is still answered."""

from __future__ import annotations

import httpx

from revops.events.service import MAX_OFFSET

from .rep_helpers import create_reps, wait_for_rep


def refused(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == list(loc) and error["msg"] and error["type"], error


async def test_a_patch_cannot_null_what_a_rep_cannot_lack(client: httpx.AsyncClient) -> None:
    rep = {"id": "005REFUSE1", "name": "Ada", "role": "SDR", "region": "AMER"}
    await create_reps(client, [rep])
    for field in ("out_of_office", "paused", "weight", "name"):
        r = await client.patch("/reps/005REFUSE1", json={field: None})
        refused(r, "body", field)
    # What a rep may lack can be cleared.
    r = await client.patch("/reps/005REFUSE1", json={"region": None, "daily_cap": None})
    assert r.status_code == 200, r.text
    assert (r.json()["region"], r.json()["daily_cap"]) == (None, None)
    await wait_for_rep(client, "005REFUSE1", region=None, daily_cap=None)


async def test_a_daily_cap_must_fit_its_column(client: httpx.AsyncClient) -> None:
    rep = {"id": "005REFUSE2", "role": "AE", "daily_cap": 2**31}
    refused(await client.post("/reps", json=rep), "body", "daily_cap")
    r = await client.post("/reps", json={**rep, "daily_cap": 2**31 - 1})
    assert r.status_code == 201 and r.json()["daily_cap"] == 2**31 - 1
    await wait_for_rep(client, "005REFUSE2", daily_cap=2**31 - 1)


async def test_a_nul_character_names_nothing(client: httpx.AsyncClient) -> None:
    paths = {
        "/reps/005%00": "rep_id",
        "/leads/00Q%00": "lead_id",
        "/leads/00Q%00/conversion": "lead_id",
    }
    for path, name in paths.items():
        refused(await client.get(path), "path", name)
    for name in ("email", "rule", "queue", "owner_id"):
        refused(await client.get("/leads", params={name: "a\x00b"}), "query", name)
    refused(
        await client.post("/reps", json={"id": "005REFUSE3", "role": "AE", "name": "A\x00"}),
        "body",
        "name",
    )
    refused(await client.patch("/reps/005REFUSE1", json={"email": "a\x00@b.co"}), "body", "email")


async def test_an_offset_past_a_billion_is_refused(client: httpx.AsyncClient) -> None:
    for path in ("/reps", "/leads", "/sla/breaches", "/writebacks"):
        r = await client.get(path, params={"offset": MAX_OFFSET})
        assert r.status_code == 200 and r.json()["items"] == [], r.text
        assert r.json()["offset"] == MAX_OFFSET
        refused(await client.get(path, params={"offset": MAX_OFFSET + 1}), "query", "offset")
    refused(await client.get("/leads", params={"offset": 2**63}), "query", "offset")


async def test_breaches_as_of_a_moment_outside_the_crm_range_is_refused(
    client: httpx.AsyncClient,
) -> None:
    for moment in ("1700-01-01T00:00:00Z", "4000-12-31T00:00:00Z"):
        r = await client.get("/sla/breaches", params={"as_of": moment, "since": moment})
        assert r.status_code == 200, r.text
    for moment in ("0001-01-01T00:00:00Z", "1699-12-31T23:59:59Z", "4000-12-31T00:00:01Z"):
        refused(await client.get("/sla/breaches", params={"as_of": moment}), "query", "as_of")
        refused(await client.get("/sla/breaches", params={"since": moment}), "query", "since")
    naive = await client.get("/sla/breaches", params={"as_of": "2026-03-01T00:00:00"})
    refused(naive, "query", "as_of")
    assert "time zone" in naive.json()["detail"][0]["msg"]


async def test_an_unknown_filter_value_is_refused_naming_it_and_the_known_ones(
    client: httpx.AsyncClient,
) -> None:
    for name, value, known in (
        ("rule", "round-robin", "'round_robin'"),
        ("queue", "inbound-MARS", "'inbound-AMER'"),
    ):
        r = await client.get("/leads", params={name: value})
        refused(r, "query", name)
        message = r.json()["detail"][0]["msg"]
        assert f"unknown value '{value}'" in message and known in message, message
        assert (await client.get("/leads", params={name: known.strip("'")})).status_code == 200
    for path, name in (("/reps", "role"), ("/reps", "region"), ("/writebacks", "status")):
        refused(await client.get(path, params={name: "nonsense"}), "query", name)


async def test_a_body_that_is_not_json_is_a_400_saying_where_it_breaks(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": "application/json"}
    r = await client.post("/reps", content=b'{"id": "005X",', headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("the body is not JSON: ") and "character" in r.text
    r = await client.patch("/reps/005X", content=b"\xff\xfe", headers=headers)
    assert r.status_code == 400, r.text

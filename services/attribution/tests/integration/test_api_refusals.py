"""Requests that ended in a 500 (a NUL character reached Postgres) or whose 422 did not
match the OpenAPI document, until tests/hostile/test_openapi.py looked: each is now
refused with a 422 in FastAPI's own shape, the one the document declares."""

from __future__ import annotations

import httpx


def refused(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == list(loc) and error["msg"] and error["type"], error


async def test_a_nul_character_names_nothing(client: httpx.AsyncClient) -> None:
    refused(await client.get("/leads", params={"email": "jane\x00@acme.com"}), "query", "email")
    refused(await client.get("/opportunities/006%00/attribution"), "path", "opportunity_id")


async def test_refusals_the_service_decides_have_the_documented_shape(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/leads", params={"email": "not-an-email"})
    refused(r, "query", "email")
    assert "not-an-email" in r.json()["detail"][0]["msg"]
    r = await client.get(
        "/reports/pipeline-by-source", params={"from": "2026-04-02", "to": "2026-04-01"}
    )
    refused(r, "query", "to")
    # A day is the company's whole day: from its first moment to its end.
    same = await client.get(
        "/reports/pipeline-by-source", params={"from": "2026-04-01", "to": "2026-04-01"}
    )
    assert same.status_code == 200, same.text
    assert (same.json()["from"], same.json()["to"]) == (
        "2026-04-01T07:00:00Z",
        "2026-04-02T07:00:00Z",
    )
    naive = await client.get("/reports/pipeline-by-source", params={"to": "2026-04-01T00:00:00"})
    refused(naive, "query", "to")
    assert "needs a time zone" in naive.json()["detail"][0]["msg"]
    r = await client.get(
        "/reports/pipeline-by-source", params={"from": "2026-04-01", "to": "2026-04-02"}
    )
    assert r.status_code == 200, r.text

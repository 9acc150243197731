"""Reps through the API: a change is published and the router applies it moments later,
so a test that routes with a rep first waits until the rep is applied."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from revops.events.testing import eventually


async def wait_for_rep(
    client: httpx.AsyncClient, rep_id: str, timeout_s: float = 20, **expected: Any
) -> dict[str, Any]:
    """The rep as the router applied it, once it has (and shows ``expected``)."""

    async def applied() -> dict[str, Any]:
        r = await client.get(f"/reps/{rep_id}")
        assert r.status_code == 200, r.text
        rep: dict[str, Any] = r.json()
        assert {k: rep[k] for k in expected} == expected, rep
        return rep

    return await eventually(applied, timeout_s=timeout_s, interval_s=0.05)


async def create_reps(client: httpx.AsyncClient, reps: Iterable[dict[str, Any]]) -> None:
    """POST each rep, then wait until the router has applied them all."""
    ids = []
    for rep in reps:
        r = await client.post("/reps", json=rep)
        assert r.status_code == 201, r.text
        ids.append(rep["id"])
    for rep_id in ids:
        await wait_for_rep(client, rep_id)


async def patch_rep(client: httpx.AsyncClient, rep_id: str, **fields: Any) -> dict[str, Any]:
    """PATCH a rep, then wait until the router shows the change."""
    r = await client.patch(f"/reps/{rep_id}", json=fields)
    assert r.status_code == 200, r.text
    return await wait_for_rep(client, rep_id, **fields)

"""Access control, for every route every service declares: nothing but health, metrics,
docs and the (signed) webhooks answers without a token; a read-only token changes
nothing. And each service's database role reaches only its own schema."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from revops.attribution.main import build_app as build_attribution
from revops.events.testing import database_url_for_tests
from revops.ingest.main import build_app as build_ingest
from revops.renewals.main import build_app as build_renewals
from revops.router.main import build_app as build_router

OPEN = re.compile(r"^/(healthz|readyz|metrics|docs|redoc|openapi\.json|webhooks/.*)")
# POSTs that only answer a question (they take a body, store nothing): a read token may.
READS_BY_POST = {("POST", "/routing-policy/dry-run")}
SERVICES = ("router", "attribution", "renewals")


def apps() -> dict[str, FastAPI]:
    return {
        "ingest": build_ingest(),
        "router": build_router(),
        "attribution": build_attribution(),
        "renewals": build_renewals(),
    }


def guarded_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation of the service's OpenAPI document, path parameters filled in."""
    routes: list[tuple[str, str]] = []
    for path, operations in app.openapi()["paths"].items():
        if not OPEN.match(path):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            routes.extend((method.upper(), concrete) for method in sorted(operations))
    return routes


@pytest.mark.parametrize("name", ["ingest", "router", "attribution", "renewals"])
async def test_every_route_but_health_and_webhooks_needs_a_token(name):
    app = apps()[name]
    routes = guarded_routes(app)
    if name != "ingest":
        assert routes, f"{name} declares no API routes"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
                response = await client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers, response.text)


@pytest.mark.parametrize("name", ["router", "renewals"])
async def test_a_read_only_token_cannot_change_anything(name):
    app = apps()[name]
    routes = guarded_routes(app)
    writes = [r for r in routes if r[0] not in ("GET", "HEAD") and r not in READS_BY_POST]
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer dev-read-token"}
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, path in writes:
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 403, (method, path, response.text)
        for method, path in READS_BY_POST & set(routes):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 422, (
                method,
                path,
                response.text,
            )  # let in, body refused


@pytest.mark.parametrize("role", SERVICES)
async def test_a_service_role_reaches_only_its_own_schema(infra, role):
    engine = create_async_engine(database_url_for_tests(role))
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {role}.probe (x int)"))
            await conn.commit()
            for other in SERVICES:
                if other == role:
                    continue
                with pytest.raises(Exception, match="permission denied"):
                    await conn.execute(text(f"SELECT 1 FROM {other}.probe"))
                await conn.rollback()
                with pytest.raises(Exception, match="permission denied"):
                    await conn.execute(text(f"CREATE TABLE {other}.intruder (x int)"))
                await conn.rollback()
            with pytest.raises(Exception, match="permission denied"):
                await conn.execute(text("CREATE SCHEMA intruder"))
            await conn.rollback()
            await conn.execute(text(f"DROP TABLE {role}.probe"))
            await conn.commit()
    finally:
        await engine.dispose()

"""What dashboards reading a service's API get: gzip for large answers when asked, CORS
for the configured origins only, and API documents whose pages need no CDN."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import APIRouter

from revops.events.db import service_metadata
from revops.events.service import ServiceRuntime, ServiceSpec, create_app
from revops.events.settings import ServiceSettings

SPEC = ServiceSpec("readers_test", service_metadata("readers_test"), Path("."), [])
DASHBOARD = "https://dashboards.example.com"


async def _nothing(session: object, event: object) -> None:
    return None


def client(**settings: object) -> httpx.AsyncClient:
    values = ServiceSettings(service_name="readers-test", **settings)  # type: ignore[arg-type]
    routes = APIRouter()

    @routes.get("/big")
    async def big() -> list[str]:
        return ["lead"] * 1000

    @routes.get("/small")
    async def small() -> list[str]:
        return ["lead"]

    app = create_app(
        title="readers",
        settings=values,
        routers=[routes],
        runtime=ServiceRuntime(SPEC, values, _nothing),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_a_large_answer_is_gzipped_when_the_client_accepts_it_a_small_one_never():
    async with client() as c:
        big = await c.get("/big", headers={"Accept-Encoding": "gzip"})
        assert big.headers["content-encoding"] == "gzip"
        assert big.json() == ["lead"] * 1000  # httpx undoes it
        assert int(big.headers["content-length"]) < 1000
        plain = await c.get("/big", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        small = await c.get("/small", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers


async def test_cors_lets_the_configured_origins_read_and_no_other():
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with client(cors_origins=[DASHBOARD]) as c:
        allowed = await c.options("/small", headers={"Origin": DASHBOARD, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == DASHBOARD
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        read = await c.get("/small", headers={"Origin": DASHBOARD})
        assert read.headers["access-control-allow-origin"] == DASHBOARD
        other = await c.options("/small", headers={"Origin": "https://evil.example", **preflight})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
    async with client() as c:  # none configured: no browser may read across origins
        read = await c.get("/small", headers={"Origin": DASHBOARD})
        assert "access-control-allow-origin" not in read.headers


async def test_swagger_ui_and_redoc_load_everything_from_the_service_itself():
    async with client() as c:
        for page in ("/docs", "/redoc"):
            html = await c.get(page)
            assert html.status_code == 200, page
            assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
            assert "/openapi.json" in assets, assets
            scripts = [a for a in assets if a.endswith((".js", ".css", ".png"))]
            assert scripts and all(a.startswith("/docs-assets/") for a in scripts), scripts
            assert "https://" not in html.text and "http://" not in html.text, page
            for asset in scripts:
                answer = await c.get(asset)
                assert answer.status_code == 200 and len(answer.content) > 1000, asset

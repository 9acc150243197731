"""What the shared app factory costs per request, without a network or a client:
`/healthz` called through the ASGI app directly, best of 7 rounds of 3,000 calls.

    uv run python bench/app_overhead.py

Prints microseconds per request with FastAPI's native OpenTelemetry on and off
(`HTTP_TELEMETRY`), alternating, so both are measured under the same conditions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from revops.events.service import create_app
from revops.events.settings import KafkaSettings

ROUNDS, CALLS = 7, 3000


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


async def per_request_us(telemetry: bool) -> float:
    app = create_app(title="bench", settings=KafkaSettings(http_telemetry=telemetry))
    for _ in range(500):  # warm up
        await app(_scope(), _receive, _send)
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            await app(_scope(), _receive, _send)
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best * 1e6


async def main() -> None:
    for telemetry in (True, False, True, False):
        us = await per_request_us(telemetry)
        print(f"HTTP_TELEMETRY={str(telemetry).lower():5}  {us:5.1f} us per /healthz")


if __name__ == "__main__":
    asyncio.run(main())

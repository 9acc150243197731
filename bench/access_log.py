"""What the JSON access log costs per request, without a network or a client: a small
route called through the ASGI app directly, best of 7 rounds of 3,000 calls, with
`HTTP_ACCESS_LOG` off and on, alternating, so both are measured under the same conditions.

    uv run python bench/access_log.py

With the log on, every request writes its JSON line through the services' own logging
set-up (`configure_logging`) to /dev/null: the formatting and the write are counted, the
terminal is not. `/healthz` (logged at DEBUG, so dropped at INFO) is measured too.
Prints microseconds and requests per second of one core, and the load average.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, TextIO

from fastapi import FastAPI

from revops.events.logs import configure_logging
from revops.events.service import create_app
from revops.events.settings import KafkaSettings

ROUNDS, CALLS = 7, 3000


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"x-request-id", b"bench-request")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


def _app(access_log: bool) -> FastAPI:
    app = create_app(title="bench", settings=KafkaSettings(http_access_log=access_log))

    @app.get("/leads/{lead_id}")
    async def lead(lead_id: str) -> dict[str, str]:
        return {"lead_id": lead_id}

    return app


async def per_request_us(access_log: bool, path: str) -> float:
    app = _app(access_log)
    scope = _scope(path)
    for _ in range(500):  # warm up
        await app(scope, _receive, _send)
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            await app(scope, _receive, _send)
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best * 1e6


async def measure(report: TextIO) -> None:
    print(f"load average before: {os.getloadavg()}", file=report)
    for path in ("/leads/L-1", "/healthz"):
        for access_log in (False, True, False, True):
            us = await per_request_us(access_log, path)
            print(
                f"{path:11} HTTP_ACCESS_LOG={str(access_log).lower():5} "
                f"{us:6.1f} us per request  {1e6 / us:8.0f} requests/s",
                file=report,
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}", file=report)


def main() -> None:
    report = sys.stdout
    # The handler writes where stdout points when it is made: /dev/null, not the report.
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        configure_logging("bench", "INFO")
        asyncio.run(measure(report))
        sys.stdout = report


if __name__ == "__main__":
    main()

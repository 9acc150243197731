"""Calling a CRM's API politely: waiting when it says to (429 and ``Retry-After``),
staying under HubSpot's per-10-second limit, watching Salesforce's daily API usage
(``Sforce-Limit-Info``), retrying what may pass (5xx, a dropped connection) a few times.

Waits go through ``sleep`` and time through ``clock`` so tests can watch them instead of
waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

Sleep = Callable[[float], Awaitable[None]]

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class ApiRefused(Exception):
    """The CRM refused a call in a way retrying cannot help (a bad query, a missing
    field); the message says which and what it said."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when the CRM answered with one


class ApiUnavailable(Exception):
    """The CRM kept failing (5xx, no connection) past the retries: run again later to
    resume."""


class ApiLimitReached(Exception):
    """Salesforce's daily API usage reached the share the run may take."""


@dataclass
class CallStats:
    calls: int = 0
    throttled: int = 0  # 429s (and Retry-After answers) waited out
    waited_s: float = 0.0
    retries: int = 0
    api_usage: tuple[int, int] | None = None  # Salesforce: used / allowed today


class RateWindow:
    """At most ``limit`` calls in any ``interval_s`` (HubSpot counts per 10 seconds)."""

    def __init__(self, limit: int, interval_s: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._interval_s = interval_s
        self._clock = clock
        self._calls: deque[float] = deque()

    def wait_s(self) -> float:
        """How long to wait before the next call may go (0: now); records it when 0."""
        now = self._clock()
        while self._calls and now - self._calls[0] >= self._interval_s:
            self._calls.popleft()
        if len(self._calls) < self._limit:
            self._calls.append(now)
            return 0.0
        return self._interval_s - (now - self._calls[0])


def retry_after_s(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


class ApiCaller:
    def __init__(
        self,
        client: httpx.AsyncClient,
        system: str,
        *,
        retries: int = 3,
        backoff_s: float = 1.0,
        max_waits: int = 50,
        window: RateWindow | None = None,
        max_api_share: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = client
        self.system = system
        self.stats = CallStats()
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_waits = max_waits
        self._window = window
        self._max_api_share = max_api_share
        self._sleep = sleep

    async def get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        return self._json(url, await self._send("GET", url, params=params))

    async def post_json(self, url: str, body: Any) -> Any:
        return self._json(url, await self._send("POST", url, body=body))

    @contextlib.asynccontextmanager
    async def streamed(
        self, url: str, params: dict[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """A GET whose body is read as it arrives (a Bulk API result set): waited out,
        retried and refused like the others until its status is a success."""
        response = await self._send("GET", url, params=params, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    def _json(self, url: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ApiRefused(
                f"{self.system} answered {url} with something that is not JSON: "
                f"{response.text[:120]!r}"
            ) from None

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        stream: bool = False,
    ) -> httpx.Response:
        failures = 0
        waits = 0
        while True:
            await self._take_turn()
            self.stats.calls += 1
            request = self.client.build_request(method, url, params=params, json=body)
            try:
                response = await self.client.send(request, stream=stream)
                if stream and response.status_code >= 300:
                    await response.aread()  # an error's body, to say what it was
                    await response.aclose()
            except httpx.TransportError as exc:
                failures += 1
                await self._retry(failures, f"{exc.__class__.__name__}: {exc}")
                continue
            try:
                self._watch_usage(response)
            except ApiLimitReached:
                await response.aclose()
                raise
            if response.status_code == 429 or (
                response.status_code == 503 and "Retry-After" in response.headers
            ):
                waits += 1
                if waits > self._max_waits:
                    raise ApiUnavailable(
                        f"{self.system} kept answering {response.status_code} "
                        f"({waits - 1} waits): run again later to resume"
                    )
                # HubSpot's 10-second policy may come without Retry-After: wait it out.
                wait = retry_after_s(response, 10.0)
                self.stats.throttled += 1
                self.stats.waited_s += wait
                await self._sleep(wait)
                continue
            if response.status_code >= 500:
                failures += 1
                await self._retry(failures, f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            if response.status_code >= 400:
                raise ApiRefused(
                    f"{self.system} refused {response.request.url.path} "
                    f"({response.status_code}): {response.text[:300]}",
                    response.status_code,
                )
            return response

    async def _take_turn(self) -> None:
        if self._window is None:
            return
        while (wait := self._window.wait_s()) > 0:
            self.stats.waited_s += wait
            await self._sleep(wait)

    async def _retry(self, failures: int, error: str) -> None:
        if failures > self._retries:
            raise ApiUnavailable(
                f"{self.system} failed {failures} times in a row ({error}): "
                "run again later to resume"
            )
        self.stats.retries += 1
        await self._sleep(self._backoff_s * 2 ** (failures - 1))

    def _watch_usage(self, response: httpx.Response) -> None:
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match is None:
            return
        used, allowed = int(match[1]), int(match[2])
        self.stats.api_usage = (used, allowed)
        if allowed and used / allowed >= self._max_api_share:
            raise ApiLimitReached(
                f"Salesforce API usage is {used:,}/{allowed:,} today, at or over the "
                f"{self._max_api_share:.0%} this run may take (BACKFILL_SALESFORCE_MAX_API_SHARE)"
                ": stopped; run again later to resume"
            )

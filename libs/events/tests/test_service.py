"""The service runtime's view of its background tasks, as /readyz reports it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from revops.events.db import service_metadata
from revops.events.service import ServiceRuntime, ServiceSpec
from revops.events.settings import ServiceSettings


async def _nothing(session: object, event: object) -> None:
    return None


def runtime() -> ServiceRuntime:
    spec = ServiceSpec("events_test", service_metadata("events_test"), Path("."), [])
    return ServiceRuntime(spec, ServiceSettings(service_name="events-test"), _nothing)


async def test_a_task_that_raised_or_was_cancelled_from_outside_is_crashed_a_returned_one_is_not():
    rt = runtime()

    async def returns() -> None:
        return None

    async def raises() -> None:
        raise RuntimeError("boom")

    finish = asyncio.Event()

    async def runs() -> None:
        await finish.wait()

    rt._spawn("returns", returns())
    rt._spawn("raises", raises())
    rt._spawn("cancelled", runs())
    rt._spawn("runs", runs())
    await asyncio.sleep(0)
    rt._tasks[2].cancel()  # by something other than stop()
    await asyncio.sleep(0.01)
    assert sorted(rt.crashed()) == ["cancelled", "raises"]

    finish.set()
    await rt.stop()
    assert rt.crashed() == []

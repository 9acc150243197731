"""The service runtime: its background tasks as /readyz reports them, and its garbage collector."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from prometheus_client import REGISTRY

from revops.events.db import service_metadata
from revops.events.service import ServiceRuntime, ServiceSpec, create_app, settle_gc
from revops.events.settings import KafkaSettings, ServiceSettings


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


def test_every_full_garbage_collection_is_timed_once_an_app_is_built():
    def full_collections() -> float:
        value = REGISTRY.get_sample_value("revops_gc_pause_seconds_count", {"generation": "2"})
        return value or 0.0

    create_app(title="gc", settings=KafkaSettings())
    create_app(title="gc again", settings=KafkaSettings())  # registers its timer once
    before = full_collections()
    gc.collect()
    assert full_collections() == before + 1


def test_after_start_up_the_live_objects_are_frozen_and_young_collections_are_rarer():
    threshold = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 10_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)

"""Several router instances in one consumer group, in one test process: each an app with
its own consumer, counting the events it handled."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx
from asgi_lifespan import LifespanManager

from revops.events.testing import eventually
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings

from .conftest import ADMIN


class Instances:
    """``n`` router processes' worth of apps in one group, each counting what it handled."""

    def __init__(self, settings: RouterSettings, n: int) -> None:
        self.apps = [build_app(settings) for _ in range(n)]
        self.handled = [0] * n
        for i, app in enumerate(self.apps):
            runner = app.state.runtime.consumer
            inner = runner._handle_batch

            async def counting(session, events, _inner=inner, _i=i):
                await _inner(session, events)
                self.handled[_i] += len(events)

            runner._handle_batch = counting
        self.stack = AsyncExitStack()

    async def __aenter__(self) -> httpx.AsyncClient:
        for app in self.apps:
            await self.stack.enter_async_context(
                LifespanManager(app, startup_timeout=60, shutdown_timeout=30)
            )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.apps[0]),
            base_url="http://router",
            headers=ADMIN,
        )
        await self.stack.enter_async_context(client)
        # Wait until the group has spread the partitions over every instance.

        async def balanced() -> None:
            for app in self.apps:
                consumer = app.state.runtime.consumer._consumer
                assert consumer is not None and consumer.assignment(), "not assigned yet"
            total = sum(len(a.state.runtime.consumer._consumer.assignment()) for a in self.apps)
            assert total == sum(t.partitions for t in SPEC.topics)

        await eventually(balanced, timeout_s=60)
        return client

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from revops.events import admin
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    create_topics,
    fresh_schema,
    running_app,
    service_settings,
    unique_prefix,
)
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings

# The event builders next to this file (tests are imported with --import-mode=importlib).

ADMIN = {"Authorization": "Bearer dev-admin-token"}


def router_settings(kafka_settings: KafkaSettings, **overrides: object) -> RouterSettings:
    settings = service_settings(RouterSettings, "router", kafka_settings.topic_prefix, **overrides)
    assert isinstance(settings, RouterSettings)
    return settings


@asynccontextmanager
async def running_router(settings: RouterSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole router (consumer, relays, API) in this process, and an admin's client."""
    async with running_app(build_app(settings), base_url="http://router", headers=ADMIN) as c:
        yield c


async def reset_router(settings: RouterSettings) -> None:
    """The schema emptied and the group rewound, as `revops reset router` does (the router
    started next rebuilds from the topics)."""
    await fresh_schema(SPEC, settings.resolved_database_url())
    await admin.reset_group_to_start(
        settings.kafka_bootstrap_servers,
        f"{settings.topic_prefix}{settings.service_name}",
        [t.name(settings.topic_prefix) for t in SPEC.topics],
    )


@pytest.fixture(scope="module")
async def client(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = router_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with running_router(settings) as c:
        yield c


@pytest.fixture(autouse=True)
def batches_apply_without_fallback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A batch that fails is re-applied one event at a time and still succeeds, which
    would hide a broken batch path: no test may rely on that fallback."""
    yield
    fallbacks = [r for r in caplog.get_records("call") if "batch failed" in r.getMessage()]
    assert not fallbacks, fallbacks[0].exc_text


@pytest.fixture
async def own_topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    """Topics of this test's own: a reset replays every event of the topics, and another
    module's leads there (their turns taken in another schema's rotations) would be
    re-applied into this one."""
    settings = kafka_settings.model_copy(update={"topic_prefix": unique_prefix()})
    await create_topics(settings)
    return settings

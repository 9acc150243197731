from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
import pytest

from revops.events.catalogue import Envelope
from revops.events.settings import KafkaSettings
from revops.events.testing import fresh_schema, running_app, service_settings
from revops.renewals.main import SPEC, build_app
from revops.renewals.settings import RenewalsSettings

# The event builders next to this file (tests are imported with --import-mode=importlib).

ADMIN = {"Authorization": "Bearer dev-admin-token"}


def renewals_settings(kafka_settings: KafkaSettings, **overrides: object) -> RenewalsSettings:
    values: dict[str, object] = {"scheduler_enabled": False}
    values.update(overrides)
    settings = service_settings(RenewalsSettings, "renewals", kafka_settings.topic_prefix, **values)
    assert isinstance(settings, RenewalsSettings)
    return settings


@pytest.fixture(scope="module")
async def client(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = renewals_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with running_app(build_app(settings), base_url="http://renewals", headers=ADMIN) as c:
        yield c


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Ids unique to one test, so the tests of a module share a service but not data."""
    tag = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{tag}"


async def publish(kafka_settings: KafkaSettings, events: Sequence[Envelope]) -> None:
    """The library's publish, patient with a broker that a busy machine slows down."""
    from revops.events.testing import publish as publish_events

    await publish_events(kafka_settings.model_copy(update={"kafka_publish_timeout_s": 30}), events)

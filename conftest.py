"""Fixtures shared by every test directory of the workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import (
    InfrastructureMissing,
    create_topics,
    delete_topics,
    require_infrastructure,
    unique_prefix,
)


@pytest.fixture(scope="session")
def infra() -> None:
    """Kafka and Postgres must be running; if not, fail and say how to start them."""
    try:
        require_infrastructure()
    except InfrastructureMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
async def kafka_settings(infra: None) -> AsyncIterator[KafkaSettings]:
    """Settings with a topic prefix of this test module's own, its topics created."""
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    yield settings
    await delete_topics(settings)

"""The same history, delivered in another order and in other batches, gives the same
state: every record, every decision, every credit."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from revops.attribution import models
from revops.attribution.main import SPEC
from revops.attribution.recompute import recompute
from revops.attribution.settings import AttributionSettings
from revops.attribution.simulate import generate
from revops.events.db import Database
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, delete_topics, publish, unique_prefix

pytestmark = pytest.mark.infra

EVENTS = 3000


def patient(settings: KafkaSettings) -> KafkaSettings:
    """Thousands of events at once on a loaded machine: more than the 1.5 s a webhook gets."""
    return settings.model_copy(update={"kafka_publish_timeout_s": 60})


async def state(settings: AttributionSettings) -> dict[str, list[Any]]:
    database = Database(settings.resolved_database_url(), SPEC.name)
    tables = (models.people, models.opportunities, models.opportunity_influence, models.touches)
    try:
        async with database.transaction() as session:
            return {
                table.name: sorted(
                    repr(sorted(row.items()))
                    for row in (await session.execute(select(table))).mappings()
                )
                for table in tables
            }
    finally:
        await database.dispose()


@pytest.fixture
async def shuffled_settings(settings: AttributionSettings) -> AsyncIterator[AttributionSettings]:
    other = settings.model_copy(update={"topic_prefix": unique_prefix(), "consumer_batch_max": 25})
    await create_topics(other)
    yield other
    await delete_topics(other)


async def test_arrival_order_and_batches_do_not_change_the_answers(
    settings: AttributionSettings,
    kafka_settings: KafkaSettings,
    shuffled_settings: AttributionSettings,
) -> None:
    history = generate(EVENTS, seed=11)
    await publish(patient(kafka_settings), history)
    in_order = await recompute(settings, SPEC)
    assert in_order.events == EVENTS
    assert in_order.opportunities > 100 and in_order.influence_rows > 100
    expected = await state(settings)

    # Every event late or early at random, across topics and within them, in batches of 25.
    shuffled = list(history)
    random.Random(3).shuffle(shuffled)
    await publish(patient(shuffled_settings), shuffled)
    out_of_order = await recompute(shuffled_settings, SPEC)
    assert out_of_order.events == EVENTS
    assert await state(shuffled_settings) == expected

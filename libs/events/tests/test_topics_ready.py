"""The tests' topics are ready before use: `create_topics` returns once every partition it
made has a leader (Kafka answers a creation before it has elected them), and the wait
gives up at its deadline naming what has none."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from revops.events import admin
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, delete_topics, unique_prefix
from revops.events.topics import ALL_TOPICS, DLQ_PARTITIONS, FORMS

EXPECTED = {"t.a": 2, "t.b": 1}
LEADER_NOT_AVAILABLE = 5


def topic(name: str, *partitions: dict[str, Any], error_code: int = 0) -> dict[str, Any]:
    return {"topic": name, "error_code": error_code, "partitions": list(partitions)}


def led(partition: int, leader: int = 1, error_code: int = 0) -> dict[str, Any]:
    return {"partition": partition, "leader": leader, "error_code": error_code}


def test_every_partition_with_a_leader_is_ready() -> None:
    described = [topic("t.a", led(0), led(1, leader=0)), topic("t.b", led(0))]
    assert admin.partitions_without_leader(described, EXPECTED) == []


def test_a_partition_without_a_leader_is_named() -> None:
    described = [topic("t.a", led(0), led(1, leader=-1)), topic("t.b", led(0))]
    assert admin.partitions_without_leader(described, EXPECTED) == ["t.a[1]"]


def test_a_partition_answered_with_an_error_is_named() -> None:
    described = [
        topic("t.a", led(0), led(1, error_code=LEADER_NOT_AVAILABLE)),
        topic("t.b", led(0)),
    ]
    assert admin.partitions_without_leader(described, EXPECTED) == ["t.a[1]"]


def test_a_partition_not_listed_yet_is_named() -> None:
    described = [topic("t.a", led(0)), topic("t.b", led(0))]
    assert admin.partitions_without_leader(described, EXPECTED) == ["t.a[1]"]


def test_a_topic_missing_or_answered_with_an_error_is_named_whole() -> None:
    assert admin.partitions_without_leader([topic("t.b", led(0))], EXPECTED) == ["t.a"]
    described = [topic("t.a", error_code=LEADER_NOT_AVAILABLE), topic("t.b", led(0))]
    assert admin.partitions_without_leader(described, EXPECTED) == ["t.a"]


def test_the_partition_counts_are_the_created_topics_and_their_dead_letter_topics() -> None:
    counts = admin.partition_counts([FORMS], "p.")
    assert counts == {FORMS.name("p."): FORMS.partitions, FORMS.dlq_name("p."): DLQ_PARTITIONS}


async def described(settings: KafkaSettings) -> list[Any]:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await client.start()
    try:
        names = list(admin.partition_counts(ALL_TOPICS, settings.topic_prefix))
        topics: list[Any] = await client.describe_topics(names)
        return topics
    finally:
        await client.close()


@pytest.mark.parametrize("trial", range(3))
async def test_create_topics_returns_with_a_leader_for_every_partition(
    infra: None, trial: int
) -> None:
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    try:
        # One look, at once: no polling here, the helper must already have waited.
        expected = admin.partition_counts(ALL_TOPICS, settings.topic_prefix)
        assert admin.partitions_without_leader(await described(settings), expected) == []
    finally:
        await delete_topics(settings)


async def test_the_wait_gives_up_at_its_deadline_naming_the_topic(infra: None) -> None:
    missing = f"{unique_prefix()}never-created"
    bootstrap = KafkaSettings().kafka_bootstrap_servers
    with pytest.raises(TimeoutError, match=rf"no leader after 0.5 s for {missing}$"):
        await admin.wait_for_leaders(bootstrap, {missing: 3}, timeout_s=0.5)

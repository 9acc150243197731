"""Kafka administration used by the CLI, the deploy scripts and the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from revops.events import topics as topic_catalogue
from revops.events.topics import TopicSpec


def _new_topics(
    specs: Sequence[TopicSpec], prefix: str, replication_factor: int = 1
) -> list[NewTopic]:
    new: list[NewTopic] = []
    for spec in specs:
        new.append(
            NewTopic(
                spec.name(prefix),
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs={"retention.ms": str(spec.retention_ms)},
            )
        )
        new.append(
            NewTopic(
                spec.dlq_name(prefix),
                num_partitions=topic_catalogue.DLQ_PARTITIONS,
                replication_factor=replication_factor,
                topic_configs={"retention.ms": str(topic_catalogue.DLQ_RETENTION_MS)},
            )
        )
    return new


_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


async def _create_missing(admin: AIOKafkaAdminClient, missing: list[NewTopic]) -> list[str]:
    """Create the topics; aiokafka reports per-topic errors in the response rather than
    raising, so each topic's error code is checked (and a refused one tried again)."""
    created: list[str] = []
    for attempt in range(1, 4):
        if not missing:
            break
        response = await admin.create_topics(missing, timeout_ms=30_000)
        failed: dict[str, str] = {}
        for topic, code, *message in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != _TOPIC_ALREADY_EXISTS:  # another process created it meanwhile
                failed[topic] = f"error {code} {message[0] if message else ''}".strip()
        missing = [t for t in missing if t.name in failed]
        if missing and attempt == 3:
            raise RuntimeError(f"Kafka refused to create topics: {failed}")
        if missing:
            await asyncio.sleep(attempt)
    return created


async def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    specs: Sequence[TopicSpec] = topic_catalogue.ALL_TOPICS,
    replication_factor: int = 1,
) -> list[str]:
    """Create the missing topics (and their dead-letter topics) with ``replication_factor``
    replicas each; returns those created. Existing topics keep their replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new_topics = _new_topics(specs, prefix, replication_factor)
        created = await _create_missing(admin, [t for t in new_topics if t.name not in existing])
        # Topics that existed get the retention topics.py names now (it may have changed).
        # Only retention.ms is ever set on our topics, so replacing the config set is safe.
        await admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t.name, configs=t.topic_configs)
                for t in new_topics
                if t.name in existing
            ]
        )
        return created
    finally:
        await admin.close()


def partition_counts(specs: Sequence[TopicSpec], prefix: str = "") -> dict[str, int]:
    """The partitions of each topic ``ensure_topics`` makes for ``specs``, dead-letter
    topics included: topic name -> partition count."""
    return {t.name: t.num_partitions for t in _new_topics(specs, prefix)}


def partitions_without_leader(
    described: Sequence[Mapping[str, Any]], expected: Mapping[str, int]
) -> list[str]:
    """What Kafka's metadata (``describe_topics``) does not yet lead of the ``expected``
    topics (name -> partition count): ``topic[partition]`` for a partition without a
    leader or not listed yet, the bare name for a topic the metadata lacks or answers
    with an error. Empty: every partition has a leader."""
    by_name = {d["topic"]: d for d in described}
    waiting: list[str] = []
    for name, count in expected.items():
        topic = by_name.get(name)
        if topic is None or topic.get("error_code") != 0:
            waiting.append(name)
            continue
        led = {
            p["partition"]
            for p in topic["partitions"]
            if p.get("error_code") == 0 and p.get("leader", -1) >= 0
        }
        waiting.extend(f"{name}[{n}]" for n in range(count) if n not in led)
    return waiting


async def wait_for_leaders(
    bootstrap: str, expected: Mapping[str, int], timeout_s: float = 60.0
) -> None:
    """Return once every partition of the ``expected`` topics (name -> partition count)
    has a leader; TimeoutError naming the ones without after ``timeout_s``. Kafka answers
    a topic's creation before it has elected the partitions' leaders, and a producer or
    reader that comes first fails, or waits out its own timeout, on a busy machine."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while waiting := partitions_without_leader(
            await admin.describe_topics(list(expected)), expected
        ):
            if time.monotonic() >= deadline:
                shown = ", ".join(waiting[:10]) + (" ..." if len(waiting) > 10 else "")
                raise TimeoutError(f"no leader after {timeout_s:g} s for {shown}")
            await asyncio.sleep(0.05)  # the poll's pace, bounded by the deadline above
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic_names: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the named topics that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topic_names))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d.get("error_code") == 0
        for p in d["partitions"]
    )


async def delete_topics_with_prefix(bootstrap: str, prefix: str | tuple[str, ...]) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (or one of several; test
    prefixes only)."""
    prefixes = (prefix,) if isinstance(prefix, str) else prefix
    if not prefixes or not all(prefixes):
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


async def group_lag(bootstrap: str, group: str, topic_names: Sequence[str]) -> list[PartitionLag]:
    """Committed offset and end offset of every partition of the topics, for a group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    partitions = await partitions_of(bootstrap, topic_names)
    await consumer.start()
    try:
        if not partitions:
            return []
        ends = await consumer.end_offsets(partitions)
        lags = []
        for tp in partitions:
            committed = await consumer.committed(tp)
            lags.append(PartitionLag(group, tp.topic, tp.partition, committed, ends[tp]))
        return lags
    finally:
        await consumer.stop()


async def reset_group_to_start(bootstrap: str, group: str, topic_names: Sequence[str]) -> int:
    """Commit the earliest offset of every partition for the group (which must have no
    live members: stop the service first). Returns how many records it will re-read."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    partitions = await partitions_of(bootstrap, topic_names)
    await consumer.start()
    try:
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(starts.items()))
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str

    def __str__(self) -> str:
        return f"{self.client_id} on {self.host.lstrip('/')}"


async def live_members(bootstrap: str, group: str) -> list[GroupMember]:
    """The consumers currently in ``group``: running instances of the service."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members = []
    for response in responses:
        for described in response.to_object()["groups"]:
            if described["group"] != group:
                continue
            for member in described["members"]:
                members.append(
                    GroupMember(member["member_id"], member["client_id"], member["client_host"])
                )
    return members

"""Who leads the partitions of a fault check's run, as the brokers answer it, timed
(bench/faults/check.py, three-broker mode)."""

from __future__ import annotations

import asyncio
import time

from system import BOOTSTRAP, System


async def partition_leaders(system: System) -> dict[str, int]:
    """'topic/partition' -> the node leading it (-1: none), for this run's topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=2000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(system.prefix)]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {
        f"{d['topic']}/{p['partition']}": p["leader"]
        for d in described
        for p in d.get("partitions", [])
    }


async def leaders_seen_by(node: int, topic_names: list[str]) -> dict[str, int]:
    """'topic/partition' -> leader, as the broker ``node`` itself answers (each broker
    applies the metadata log on its own, so two may disagree for a moment)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.metadata import MetadataRequest

    client = AIOKafkaClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=2000)
    await client.bootstrap()
    try:
        response = await client.send(node, MetadataRequest(topic_names))
    finally:
        await client.close()
    return {
        f"{t['topic']}/{p['partition']}": p["leader"]
        for t in response.to_object()["topics"]
        for p in t["partitions"]
    }


async def until_elected(
    system: System, dead: int, topic_names: list[str], timeout_s: float
) -> tuple[float | None, float | None]:
    """Wall times at which the first live broker, then every live broker, answered that
    no partition of the run is led by ``dead`` or leaderless; None: not within timeout."""
    live = [n for n in (1, 2, 3) if n != dead]
    first: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        moved = []
        for node in live:
            try:
                leaders = await asyncio.wait_for(leaders_seen_by(node, topic_names), 3)
            except Exception:
                leaders = {}
            moved.append(bool(leaders) and all(n not in (dead, -1) for n in leaders.values()))
        if any(moved) and first is None:
            first = time.time()
        if all(moved):
            return first, time.time()
        await asyncio.sleep(0.1)
    return first, None


async def every_broker_knows(system: System, timeout_s: float = 60) -> float | None:
    """Seconds until every broker answers with a leader for every partition of the run."""
    started = time.monotonic()
    names = sorted({tp.rsplit("/", 1)[0] for tp in await partition_leaders(system)})
    while time.monotonic() - started < timeout_s:
        try:
            seen = [await asyncio.wait_for(leaders_seen_by(n, names), 3) for n in (1, 2, 3)]
        except Exception:
            seen = []
        if seen and all(v and all(node >= 0 for node in v.values()) for v in seen):
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.1)
    return None

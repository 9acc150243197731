"""Publishing: concurrent requests share one publish call; while Kafka is down one
request probes it and the others are answered at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from revops.events.catalogue import Envelope
from revops.events.producer import KafkaUnavailable
from revops.ingest.domain.product import parse_signup
from revops.ingest.publishing import Coalescer, KafkaGate, StateOffsets


class SlowBroker:
    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    async def publish(self, events: Sequence[Envelope]) -> None:
        self.calls += 1
        await asyncio.sleep(0.3)
        if not self.up:
            raise KafkaUnavailable("down")


SIGNUP = {
    "type": "user.signed_up",
    "timestamp": "2024-05-31T16:08:45Z",
    "data": {"user_id": "u", "email": "a@example.com", "signup_type": "cloud"},
}
EVENTS = [parse_signup(SIGNUP, webhook_id="m", received_at=datetime(2024, 6, 1, tzinfo=UTC))]


async def timed(gate: KafkaGate, broker: SlowBroker) -> tuple[bool, float]:
    started = time.monotonic()
    try:
        await gate.publish(broker, EVENTS, deadline_s=1.9)
        return True, time.monotonic() - started
    except KafkaUnavailable:
        return False, time.monotonic() - started


async def test_one_probe_at_a_time_while_down_then_recovery() -> None:
    gate, broker = KafkaGate(), SlowBroker()
    ok, took = await timed(gate, broker)
    assert not ok and took == pytest.approx(0.3, abs=0.2)
    assert not gate.down  # a failed publish of a connected producer does not close it
    gate.down = True  # the producer could not connect at startup
    results = await asyncio.gather(*(timed(gate, broker) for _ in range(5)))
    slow = [t for ok, t in results if t > 0.2]
    assert all(not ok for ok, _ in results)
    assert len(slow) == 1  # the probe; the four others were answered at once
    assert broker.calls == 2
    assert gate.down
    broker.up = True
    assert (await timed(gate, broker))[0] is True
    assert not gate.down
    results = await asyncio.gather(*(timed(gate, broker) for _ in range(3)))
    assert all(ok for ok, _ in results)  # healthy: no gate


async def test_nothing_to_publish_needs_no_kafka() -> None:
    gate, broker = KafkaGate(), SlowBroker()
    gate.down = True
    await gate.publish(broker, [], deadline_s=1.9)
    assert broker.calls == 0


class RecordingBroker:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail = False

    async def publish(self, events: Sequence[Envelope]) -> None:
        self.calls.append(len(events))
        await asyncio.sleep(0.01)
        if self.fail:
            raise KafkaUnavailable("down")


async def test_concurrent_requests_share_one_publish_and_its_outcome() -> None:
    broker = RecordingBroker()
    coalescer = Coalescer(lambda: broker)
    await asyncio.gather(*(coalescer.publish(EVENTS * n) for n in (1, 2, 3)))
    assert broker.calls == [6]  # one call for the three requests
    await coalescer.publish(EVENTS)
    assert broker.calls == [6, 1]
    broker.fail = True
    results = await asyncio.gather(
        *(coalescer.publish(EVENTS) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, KafkaUnavailable) for r in results)  # every request is told
    await coalescer.publish([])  # nothing to publish: no call at all
    assert broker.calls == [6, 1, 3]


async def test_coalesced_calls_are_capped_without_splitting_a_request() -> None:
    broker = RecordingBroker()
    coalescer = Coalescer(lambda: broker, max_events=4)
    await asyncio.gather(*(coalescer.publish(EVENTS * n) for n in (3, 1, 2, 5, 1)))
    # 5 >= the cap: published at once, on its own; the others grouped up to 4.
    assert broker.calls == [5, 4, 3]


async def turns(n: int) -> None:
    """Let the event loop run ``n`` turns (no time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Reads:
    """A read of the end offsets that finishes when told: each read returns its number."""

    def __init__(self) -> None:
        self.started = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()

    async def read(self) -> dict[str, list[int]]:
        self.started += 1
        number = self.started
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return {"read": [number]}


async def test_a_lead_never_takes_offsets_read_before_it_arrived_and_waiting_leads_share_one():
    reads = Reads()
    state = StateOffsets(reads.read)
    first = asyncio.ensure_future(state.now())
    await turns(5)  # the first read is on its way
    assert reads.started == 1
    later = [asyncio.ensure_future(state.now()) for _ in range(5)]
    await turns(5)
    assert reads.started == 1  # they wait for the next read, not this one
    reads.release.set()
    assert await first == {"read": [1]}
    assert [await f for f in later] == [{"read": [2]}] * 5
    assert reads.started == 2 and reads.most_in_flight == 1


async def test_a_failed_read_fails_its_requests_and_the_next_request_reads_again():
    calls = 0

    async def read() -> dict[str, list[int]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("broker away")
        return {"t": [7]}

    state = StateOffsets(read)
    with pytest.raises(OSError):
        await state.now()
    assert await state.now() == {"t": [7]}


async def test_reads_start_at_most_once_per_gather_and_who_arrives_meanwhile_joins():
    reads = Reads()
    reads.release.set()
    state = StateOffsets(reads.read, gather_s=0.05)
    assert await state.now() == {"read": [1]}
    started = time.monotonic()
    second = [asyncio.ensure_future(state.now()) for _ in range(3)]
    await turns(5)
    third = asyncio.ensure_future(state.now())  # arrives while the next read waits
    assert [await f for f in [*second, third]] == [{"read": [2]}] * 4
    assert time.monotonic() - started >= 0.04

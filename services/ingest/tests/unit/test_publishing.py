"""Publishing: concurrent requests share one publish call; while Kafka is down one
request probes it and the others are answered at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from revops.events.catalogue import Envelope
from revops.events.producer import KafkaUnavailable
from revops.ingest.domain.forms import FormRules, parse_submission
from revops.ingest.domain.product import parse_signup
from revops.ingest.publishing import (
    STATE_OFFSETS_WAIT_S,
    Coalescer,
    KafkaGate,
    StateOffsets,
    with_state_offsets,
)


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
FORM = (Path(__file__).parents[1] / "formats" / "hubspot_form_submission.json").read_bytes()
FORM_EVENTS = [
    parse_submission(
        json.loads(FORM), FormRules(), raw_body=FORM, received_at=datetime(2024, 6, 1, tzinfo=UTC)
    )
]


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


class PartlyLeaderless:
    """Acknowledges each event on its own, like EventProducer.hand_over; events of the
    signups topic never are (their partition's leader is away)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def publish(self, events: Sequence[Envelope]) -> None:
        raise AssertionError("a producer that hands over is never asked to publish")

    async def hand_over(self, events: Sequence[Envelope]) -> list[asyncio.Future[None]]:
        self.calls.append(len(events))
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future[None]] = []
        for event in events:
            ack: asyncio.Future[None] = loop.create_future()
            if event.type != "signup.created":
                loop.call_later(0.01, ack.set_result, None)
            acks.append(ack)
        return acks


async def test_a_request_is_answered_by_its_own_events_when_its_call_shares_a_leaderless_one():
    broker = PartlyLeaderless()
    coalescer = Coalescer(lambda: broker)
    gate = KafkaGate()
    [form] = FORM_EVENTS
    healthy = [gate.publish(coalescer, [form] * n, deadline_s=0.5) for n in (1, 2)]
    stuck = gate.publish(coalescer, [form, *EVENTS], deadline_s=0.5)
    started = time.monotonic()
    results = await asyncio.gather(*healthy, stuck, return_exceptions=True)
    assert broker.calls == [5]  # one call for the three requests
    assert results[:2] == [None, None]  # acknowledged in their own time, not the stuck one's
    assert isinstance(results[2], TimeoutError)  # the deadline: a 503
    assert time.monotonic() - started == pytest.approx(0.5, abs=0.3)


async def test_a_failed_event_fails_only_its_request():
    class OneRefused(PartlyLeaderless):
        async def hand_over(self, events: Sequence[Envelope]) -> list[asyncio.Future[None]]:
            acks = [asyncio.get_running_loop().create_future() for _ in events]
            for event, ack in zip(events, acks, strict=True):
                if event.type == "signup.created":
                    ack.set_exception(KafkaUnavailable("no leader"))
                else:
                    ack.set_result(None)
            return acks

    coalescer = Coalescer(lambda: OneRefused())
    results = await asyncio.gather(
        coalescer.publish(FORM_EVENTS),
        coalescer.publish([*FORM_EVENTS, *EVENTS]),
        coalescer.publish(FORM_EVENTS),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], KafkaUnavailable)


async def test_while_reads_fail_new_leads_go_unstamped_without_waiting_then_stamped_again():
    broker_back = asyncio.Event()
    reads = 0

    async def read() -> dict[str, list[int]]:
        nonlocal reads
        reads += 1
        if not broker_back.is_set():
            await asyncio.sleep(10)  # a state partition's leader is away: no answer
        return {"t": [reads]}

    state = StateOffsets(read, timeout_s=0.2)
    first = time.monotonic()
    [lead] = await with_state_offsets(state, EVENTS)
    # The first lead waits its while (it cannot know), and goes without the stamp.
    assert lead.state_offsets is None
    assert time.monotonic() - first == pytest.approx(STATE_OFFSETS_WAIT_S, abs=0.15)
    await wait_until(lambda: not state.answering)  # the read was cut off at 0.2 s
    started = time.monotonic()
    for _ in range(20):
        [lead] = await with_state_offsets(state, EVENTS)
        assert lead.state_offsets is None
    assert time.monotonic() - started < STATE_OFFSETS_WAIT_S  # none of the 20 waited
    assert reads <= 3  # the reads go on, one at a time, in the background
    broker_back.set()
    await wait_until(lambda: state.answering, then=lambda: state.next_read())
    [lead] = await with_state_offsets(state, EVENTS)
    assert lead.state_offsets is not None  # stamped again


async def wait_until(
    condition: Callable[[], bool], then: Callable[[], object] | None = None, timeout_s: float = 3
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if then is not None:
            then()
        await asyncio.sleep(0.01)

"""Handing a request's events to Kafka: requests in flight at the same moment share one
publish call, and while Kafka is unreachable one request at a time probes it; a new lead
carries the CRM state topics' end offsets as they were when it was accepted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from aiokafka import TopicPartition
from aiokafka import errors as Errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.offset import OffsetRequest

from revops.events import admin
from revops.events.catalogue import Envelope
from revops.events.producer import KafkaUnavailable
from revops.events.settings import KafkaSettings

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None: ...


@runtime_checkable
class HandsOver(Protocol):
    """A publisher that acknowledges each event on its own (``EventProducer.hand_over``)."""

    async def hand_over(self, events: Sequence[Envelope]) -> list[asyncio.Future[None]]: ...


class Coalescer:
    """Joins the events of requests that reach the publish step in the same event-loop
    turn into one ``publish`` call, and answers each request when that call returns.

    A single-event webhook otherwise pays the producer's per-call cost (a task, a gather,
    a small produce request) on its own; under load that cost, not parsing, bounded the
    request rate. Each request is answered by its own events' acknowledgements (a
    partition whose leader is away fails only the requests with events there), when the
    producer acknowledges them one by one; else all or nothing per call. A request told
    Kafka is unavailable (503) is safe: senders resend, and event ids are stable.
    """

    def __init__(
        self,
        producer: Callable[[], Publisher],
        max_events: int = 100,
        state_offsets: StateOffsets | None = None,
    ) -> None:
        self._producer = producer  # looked up per call: tests swap the app's producer
        # Read once per publish call, after every request in it arrived: new leads carry them.
        self.state_offsets = state_offsets
        # A bigger call takes longer to acknowledge and, when it misses the publish
        # timeout, fails more requests at once; a request this big gains nothing from
        # company and is published on its own.
        self._max_events = max_events
        self._pending: list[tuple[Sequence[Envelope], asyncio.Future[None]]] = []
        self._flush_scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def publish(self, events: Sequence[Envelope]) -> None:
        if not events:
            return
        if len(events) >= self._max_events:
            await self._send(events)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        await done

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._flush_scheduled = False
        group: list[tuple[Sequence[Envelope], asyncio.Future[None]]] = []
        size = 0
        for request in pending:
            if group and size + len(request[0]) > self._max_events:
                self._start(group)
                group, size = [], 0
            group.append(request)
            size += len(request[0])
        if group:
            self._start(group)

    def _start(self, batch: list[tuple[Sequence[Envelope], asyncio.Future[None]]]) -> None:
        task = asyncio.ensure_future(self._publish(batch))
        self._in_flight.add(task)  # a task nobody references may be collected
        task.add_done_callback(self._in_flight.discard)

    async def _publish(self, batch: list[tuple[Sequence[Envelope], asyncio.Future[None]]]) -> None:
        events = [event for request_events, _ in batch for event in request_events]
        try:
            acks = await self._hand_over(events)
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(
                        exc if isinstance(exc, Exception) else KafkaUnavailable(repr(exc))
                    )
            if not isinstance(exc, Exception):
                raise
        else:
            if acks is not None:
                _answer_each(batch, acks)
                return
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _hand_over(self, events: Sequence[Envelope]) -> list[asyncio.Future[None]] | None:
        """Each event's acknowledgement from a producer that gives them one by one; None
        (all acknowledged) from one that publishes all or nothing."""
        if self.state_offsets is not None:
            events = await with_state_offsets(self.state_offsets, events)
        producer = self._producer()
        if isinstance(producer, HandsOver):
            return await producer.hand_over(events)
        await producer.publish(events)
        return None

    async def _send(self, events: Sequence[Envelope]) -> None:
        if self.state_offsets is not None:
            events = await with_state_offsets(self.state_offsets, events)
        await self._producer().publish(events)


def _answer_each(
    batch: list[tuple[Sequence[Envelope], asyncio.Future[None]]],
    acks: Sequence[asyncio.Future[None]],
) -> None:
    start = 0
    for request_events, done in batch:
        _Answer(done, acks[start : start + len(request_events)])
        start += len(request_events)


class _Answer:
    """Answers one request once each of its events is acknowledged, or with the first
    failure (callbacks, not a task per request: the coalescer exists to save that)."""

    __slots__ = ("done", "waiting")

    def __init__(self, done: asyncio.Future[None], acks: Sequence[asyncio.Future[None]]) -> None:
        self.done = done
        self.waiting = len(acks)
        for ack in acks:
            ack.add_done_callback(self.acknowledged)

    def acknowledged(self, ack: asyncio.Future[None]) -> None:
        # Retrieved even when nobody waits any more (the request's deadline passed).
        error = KafkaUnavailable("cancelled") if ack.cancelled() else ack.exception()
        if self.done.done():
            return
        if error is not None:
            self.done.set_exception(error)
            return
        self.waiting -= 1
        if self.waiting == 0:
            self.done.set_result(None)


NEW_LEADS = ("form.submitted", "signup.created")
# Well under the publish deadline: the offsets are worth little next to an answer in time.
STATE_OFFSETS_WAIT_S = 0.3
# A read that takes longer serves nobody (the leads waiting for it have gone on without
# it) and would only delay the next one: one is cut off here and counts as failed.
STATE_OFFSETS_READ_S = 1.0


async def with_state_offsets(state: StateOffsets, events: Sequence[Envelope]) -> Sequence[Envelope]:
    """New leads stamped with the CRM state topics' end offsets as they are now (after
    their requests arrived): the router routes them once everything below is applied.
    Without the offsets (Kafka slow to answer them, or a state partition without a
    reachable leader) the router reads them itself, later: still every change
    acknowledged before, and perhaps a few more to wait for. A stamp is all the
    partitions or none: a partition left out would let the router route the lead before
    a change acknowledged there."""
    if not any(e.type in NEW_LEADS for e in events):
        return events
    read = state.next_read()
    if not state.answering:
        # The last read failed: waiting for this one would only delay the answer (by the
        # whole wait, while a state partition's leader is away). It tells when reads
        # answer again; meanwhile the leads go unstamped.
        return events
    # asyncio.wait: a timeout leaves the shared read alone.
    done, _ = await asyncio.wait((read,), timeout=STATE_OFFSETS_WAIT_S)
    if not done or read.exception() is not None:
        return events  # the stamp only saves the router a wait: publish without it
    offsets = read.result()
    return [
        e.model_copy(update={"state_offsets": offsets}) if e.type in NEW_LEADS else e
        for e in events
    ]


class KafkaGate:
    """While the producer has never reached Kafka (it was down when ingest started),
    every publish would first queue behind the producer's connection attempts, one after
    the other: then one request at a time probes Kafka and the others get their 503 at
    once, so every answer stays within the senders' 2 s. Once connected, the producer
    reconnects by itself and each publish is bounded by its own timeout, so a slow or
    failed publish does not close the gate (under overload, closing it would starve
    the healthy requests)."""

    def __init__(self) -> None:
        self.down = False
        self._probing = False

    async def publish(
        self, producer: Publisher, events: Sequence[Envelope], deadline_s: float
    ) -> None:
        if not events:
            return  # nothing to acknowledge
        if not self.down:
            # The producer bounds its own wait (kafka_publish_timeout_s); the deadline
            # also bounds the time before it, waiting for the coalescer or the loop.
            await asyncio.wait_for(producer.publish(events), deadline_s)
            return
        if self._probing:
            raise KafkaUnavailable("Kafka is unreachable (another request is probing it)")
        self._probing = True
        try:
            # The producer is connecting: bound the whole attempt.
            await asyncio.wait_for(producer.publish(events), deadline_s)
            self.down = False
        finally:
            self._probing = False


StateOffsetsRead = Any  # what the read returns: topic -> each partition's end offset


class StateOffsets:
    """The end offsets of the CRM state topics' partitions, stamped on a new lead so the
    router can route it once every CRM change acknowledged before it is applied.

    The offsets must be read after the request arrived (a change acknowledged just before
    it is then below them), so a request never takes a read that was already on its way;
    requests arriving while one is on its way share the next. At most one read is on its
    way at a time, and one starts at most every ``gather_s``: under a burst of forms, one
    Kafka round trip serves them all. Each read is cut off after ``timeout_s``; while
    reads fail, ``answering`` is false and new leads go without waiting for one.
    """

    def __init__(
        self,
        read: Callable[[], Awaitable[StateOffsetsRead]],
        gather_s: float = 0.0,
        timeout_s: float = STATE_OFFSETS_READ_S,
    ) -> None:
        self._read = read
        self._gather_s = gather_s
        self._timeout_s = timeout_s
        self.answering = True  # the last read answered in time
        self._last_read_at = -gather_s
        self._next: asyncio.Future[StateOffsetsRead] | None = None  # not on its way yet
        self._reading: asyncio.Task[None] | None = None

    def next_read(self) -> asyncio.Future[StateOffsetsRead]:
        """The read that serves a request arriving now (shared: never cancel it)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read_all())
        return self._next

    async def now(self) -> StateOffsetsRead:
        return await asyncio.shield(self.next_read())

    async def _read_all(self) -> None:
        """Serve the waiting requests, one read each round, until nobody waits."""
        loop = asyncio.get_running_loop()
        try:
            while self._next is not None:
                wait = self._last_read_at + self._gather_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # who arrives meanwhile joins this read
                serving, self._next = self._next, None
                self._last_read_at = loop.time()
                try:
                    offsets = await asyncio.wait_for(self._read(), self._timeout_s)
                except Exception as exc:
                    serving.set_exception(exc)
                    serving.exception()  # retrieved: leads that went on without it never read it
                    self._failed(exc)
                else:
                    serving.set_result(offsets)
                    self._answered()
        finally:
            self._reading = None

    def _failed(self, exc: Exception) -> None:
        if self.answering:  # once per outage, not once per lead
            log.warning(
                "CRM state offsets not read: new leads go unstamped (the router reads them)",
                extra={"error": repr(exc)},
            )
        self.answering = False

    def _answered(self) -> None:
        if not self.answering:
            log.info("CRM state offsets read again: new leads are stamped")
        self.answering = True


class EndOffsetsReader:
    """Reads the end offsets of some topics' partitions: one ListOffsets request to each
    partition's leader, on a Kafka client started on first use (Kafka may be away when
    ingest starts) and again after a failed start. The topics' partitions are looked up
    again every ``PARTITIONS_MAX_AGE_S``: a partition an operator adds is read from then on.

    Not ``AIOKafkaConsumer.end_offsets``: it answers the same with a task per broker and a
    retry loop around them, twice the CPU per read (378 against 172 us for 25 partitions
    on one broker), and under load the reads were 7 % of an ingest worker's CPU. A failed
    read is not retried here: the leads waiting for it go unstamped, and the next read finds
    the new leaders (a failure asks for fresh metadata)."""

    PARTITIONS_MAX_AGE_S = 30.0

    def __init__(self, settings: KafkaSettings, topic_names: Sequence[str]) -> None:
        self._settings = settings
        self._topic_names = list(topic_names)
        self._client: AIOKafkaClient | None = None
        self._lock = asyncio.Lock()
        self._partitions: list[TopicPartition] = []
        self._partitions_at = 0.0
        self._looking_up: asyncio.Future[None] | None = None

    async def read(self) -> dict[str, list[int]]:
        """Each topic's partitions' end offsets (read-committed), by partition number."""
        client = await self._started()
        if not self._partitions:
            # Shielded: a read cut off (StateOffsets' timeout) leaves the lookup going.
            await asyncio.shield(self._look_up())
        elif self._stale():
            # Looked up beside the reads (an admin round trip): the last list serves.
            self._look_up()
        requests = _requests_by_leader(client, self._partitions)
        answers = await asyncio.gather(*(client.send(node, r) for node, r in requests.items()))
        ends = _end_offsets(client, answers)
        out: dict[str, list[int]] = {}
        for tp in sorted(ends, key=lambda tp: (tp.topic, tp.partition)):
            offsets = out.setdefault(tp.topic, [])
            offsets.extend([0] * (tp.partition - len(offsets)))  # a partition not described
            offsets.append(ends[tp])
        return out

    def _stale(self) -> bool:
        age = asyncio.get_running_loop().time() - self._partitions_at
        return age >= self.PARTITIONS_MAX_AGE_S

    def _look_up(self) -> asyncio.Future[None]:
        if self._looking_up is None:
            self._looking_up = asyncio.ensure_future(self._look_up_partitions())
        return self._looking_up

    async def _look_up_partitions(self) -> None:
        try:
            self._partitions = await admin.partitions_of(
                self._settings.kafka_bootstrap_servers, self._topic_names
            )
            self._partitions_at = asyncio.get_running_loop().time()
        finally:
            self._looking_up = None

    async def _started(self) -> AIOKafkaClient:
        async with self._lock:
            if self._client is None:
                client = AIOKafkaClient(
                    bootstrap_servers=self._settings.kafka_bootstrap_servers,
                    client_id="ingest-offsets",
                    request_timeout_ms=int(self._settings.kafka_publish_timeout_s * 1000),
                    metadata_max_age_ms=30_000,
                )
                try:
                    await client.bootstrap()
                    # The topics' leaders are kept in the client's metadata from now on.
                    await client.set_topics(self._topic_names)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            return self._client

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


LATEST = -1  # ListOffsets' timestamp that asks for the end offset
READ_COMMITTED = 1  # the end as consumers reading committed records see it


def _requests_by_leader(
    client: AIOKafkaClient, partitions: Sequence[TopicPartition]
) -> dict[int, OffsetRequest]:
    by_leader: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for tp in partitions:
        leader = client.cluster.leader_for_partition(tp)
        if leader is None or leader < 0:
            client.force_metadata_update()
            raise KafkaUnavailable(f"no known leader for {tp.topic}:{tp.partition}")
        by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append((tp.partition, LATEST))
    return {
        node: OffsetRequest(-1, READ_COMMITTED, list(partitions_.items()))
        for node, partitions_ in by_leader.items()
    }


def _end_offsets(client: AIOKafkaClient, answers: Sequence[Any]) -> dict[TopicPartition, int]:
    """The end offsets in the brokers' answers; any partition's error fails the read (a
    stamp is all the partitions or none)."""
    ends: dict[TopicPartition, int] = {}
    for answer in answers:
        for topic, found in answer.topics:
            # Versions 1 and later: partition, error code, timestamp, offset[, leader epoch].
            for partition, error_code, _timestamp, offset, *_ in found:
                if error_code:
                    client.force_metadata_update()  # a leader moved, most likely
                    raise Errors.for_code(error_code)(f"end offset of {topic}:{partition}")
                ends[TopicPartition(topic, partition)] = int(offset)
    return ends

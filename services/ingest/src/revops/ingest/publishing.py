"""Handing a request's events to Kafka: requests in flight at the same moment share one
publish call, and while Kafka is unreachable one request at a time probes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from revops.events.catalogue import Envelope
from revops.events.producer import KafkaUnavailable


class Publisher(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None: ...


class Coalescer:
    """Joins the events of requests that reach the publish step in the same event-loop
    turn into one ``publish`` call, and answers each request when that call returns.

    A single-event webhook otherwise pays the producer's per-call cost (a task, a gather,
    a small produce request) on its own; under load that cost, not parsing, bounded the
    request rate. All or nothing per call: if it fails, every request in it is told Kafka
    is unavailable (503), which is safe -- senders resend, and event ids are stable.
    """

    def __init__(self, producer: Callable[[], Publisher], max_events: int = 100) -> None:
        self._producer = producer  # looked up per call: tests swap the app's producer
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
            await self._producer().publish(events)
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
            await self._producer().publish(events)
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(
                        exc if isinstance(exc, Exception) else KafkaUnavailable(repr(exc))
                    )
            if not isinstance(exc, Exception):
                raise
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)


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

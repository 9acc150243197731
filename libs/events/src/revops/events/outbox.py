"""The transactional outbox: derived events and CRM write-backs written in the same
transaction as the state that caused them, delivered after commit by a relay.

A crash before commit leaves no row; a crash after commit leaves a pending row that the
relay delivers; a crash after delivery but before the row is marked sent delivers it once
more, with the same event id, which consumers' inboxes ignore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import metrics
from revops.events.catalogue import Envelope
from revops.events.codec import encode_event
from revops.events.consumer import is_infrastructure_error
from revops.events.db import Database
from revops.events.producer import EventProducer
from revops.events.settings import ServiceSettings

log = logging.getLogger(__name__)

KAFKA = "kafka"
PURGE_EVERY = timedelta(minutes=10)
PURGE_SLICE = 10_000


@dataclass(frozen=True)
class OutboxMessage:
    event_id: str
    destination: str
    topic: str
    key: str
    value: bytes
    attempts: int


class RetryLater(Exception):
    """A sender's way to say "not now": deliver again after ``after_s`` seconds
    (an HTTP 429's Retry-After, say), without counting as a permanent failure."""

    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


Sender = Callable[[OutboxMessage], Awaitable[None]]


async def add_event(session: AsyncSession, outbox: Table, event: Envelope, prefix: str) -> None:
    """Queue an event for publication, in the caller's transaction. Adding the same event
    id twice (a replayed input) queues it once."""
    await session.execute(
        pg_insert(outbox)
        .values(
            event_id=event.id,
            destination=KAFKA,
            topic=event.topic.name(prefix),
            key=event.key,
            value=encode_event(event),
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


async def add_message(
    session: AsyncSession, outbox: Table, *, event_id: str, destination: str, key: str, value: bytes
) -> None:
    """Queue a delivery to another destination (a CRM write-back), in the caller's
    transaction. The destination's sender is registered with the relay."""
    await session.execute(
        pg_insert(outbox)
        .values(event_id=event_id, destination=destination, topic="", key=key, value=value)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


class OutboxRelay:
    """Delivers pending outbox rows. Rows are claimed with FOR UPDATE SKIP LOCKED, so any
    number of service instances can relay from the same table without sending a row twice
    at the same time."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        database: Database,
        outbox: Table,
        producer: EventProducer,
        senders: Mapping[str, Sender] | None = None,
        batch_size: int = 200,
        idle_poll_s: float = 0.5,
        max_attempts: int = 10,
        gather_s: float | None = None,
    ) -> None:
        self._service = settings.service_name
        self._database = database
        self._outbox = outbox
        self._producer = producer
        self._senders: dict[str, Sender] = dict(senders or {})
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._max_attempts = max_attempts
        self._gather_s = settings.outbox_gather_ms / 1000 if gather_s is None else gather_s
        self.passes = 0  # relay_once calls, for the tests and the curious
        self._keep_sent = timedelta(hours=settings.outbox_keep_sent_hours)
        self._next_purge = datetime.now(UTC)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """Called after a commit that may have queued rows: deliver now, not at next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                delivered = await self.relay_once()
                await self._purge_when_due()
                delay = 0.2
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("outbox relay waiting for infrastructure", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                continue
            if delivered < self._batch_size:  # a full batch says more are waiting
                await self._wait_for_rows()

    async def _wait_for_rows(self) -> None:
        """Until a commit says rows may be waiting, or the idle poll comes round.

        Under load the consumer commits many small batches a second; a relay pass per
        commit (a transaction, a query, often nothing to send) cost the consumer services
        a sixth of their CPU. So after a wake-up the relay waits a few milliseconds more
        and one pass takes every row committed meanwhile. A wake-up that arrives during a
        pass is kept, so no committed row waits for the idle poll."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
            woken = True
        if woken and self._gather_s > 0 and not self._stopping.is_set():
            await asyncio.sleep(self._gather_s)
        self._wake.clear()

    async def relay_once(self) -> int:
        """Deliver one batch of due rows; returns how many were handled."""
        self.passes += 1
        now = datetime.now(UTC)
        async with self._database.transaction() as session:
            rows = (
                await session.execute(
                    select(self._outbox)
                    .where(
                        self._outbox.c.sent_at.is_(None),
                        self._outbox.c.failed_at.is_(None),
                        self._outbox.c.next_attempt_at <= now,
                    )
                    .order_by(self._outbox.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            messages = [
                OutboxMessage(r.event_id, r.destination, r.topic, r.key, r.value, r.attempts)
                for r in rows
            ]
            kafka_rows = [m for m in messages if m.destination == KAFKA]
            if kafka_rows:
                await self._publish(kafka_rows)
                await self._mark_sent(session, [m.event_id for m in kafka_rows], KAFKA)
            for message in messages:
                if message.destination != KAFKA:
                    await self._deliver_other(session, message, now)
        return len(messages)

    async def _purge_when_due(self) -> None:
        now = datetime.now(UTC)
        if now >= self._next_purge:
            await self.purge_sent(now - self._keep_sent)
            self._next_purge = now + PURGE_EVERY

    async def purge_sent(self, sent_before: datetime) -> int:
        """Delete rows sent before the cut-off, a bounded slice per transaction so a first
        purge of a large table never holds locks for long; returns how many went."""
        total = 0
        while True:
            async with self._database.transaction() as session:
                slice_ = (
                    select(self._outbox.c.id)
                    .where(self._outbox.c.sent_at < sent_before)
                    .limit(PURGE_SLICE)
                    .scalar_subquery()
                )
                result = await session.execute(
                    delete(self._outbox).where(self._outbox.c.id.in_(slice_))
                )
            deleted = int(result.rowcount)  # type: ignore[attr-defined]
            total += deleted
            if deleted < PURGE_SLICE:
                return total

    async def _publish(self, messages: list[OutboxMessage]) -> None:
        # Headers are rebuilt from the stored value's envelope fields we need.
        await self._producer.publish_records(
            [(m.topic, m.key, m.value, [("event-id", m.event_id.encode())]) for m in messages]
        )

    async def _mark_sent(
        self, session: AsyncSession, event_ids: list[str], destination: str
    ) -> None:
        await session.execute(
            update(self._outbox)
            .where(self._outbox.c.event_id.in_(event_ids))
            .values(sent_at=func.now(), attempts=self._outbox.c.attempts + 1, last_error=None)
        )
        metrics.OUTBOX_SENT.labels(self._service, destination).inc(len(event_ids))

    async def _deliver_other(
        self, session: AsyncSession, message: OutboxMessage, now: datetime
    ) -> None:
        sender = self._senders.get(message.destination)
        try:
            if sender is None:
                raise RuntimeError(f"no sender configured for destination {message.destination!r}")
            await sender(message)
        except Exception as exc:
            await self._record_failure(session, message, exc, now)
            return
        await self._mark_sent(session, [message.event_id], message.destination)

    async def _record_failure(
        self, session: AsyncSession, message: OutboxMessage, exc: Exception, now: datetime
    ) -> None:
        attempts = message.attempts + 1
        if isinstance(exc, RetryLater) and exc.after_s is not None:
            wait_s = exc.after_s
        else:
            wait_s = min(2.0**attempts, 300.0)  # exponential backoff, capped at 5 minutes
        give_up = attempts >= self._max_attempts
        metrics.OUTBOX_FAILURES.labels(self._service, message.destination).inc()
        log.warning(
            "outbox delivery failed",
            extra={
                "event_id": message.event_id,
                "destination": message.destination,
                "attempts": attempts,
                "gave_up": give_up,
                "error": str(exc)[:300],
            },
        )
        await session.execute(
            update(self._outbox)
            .where(self._outbox.c.event_id == message.event_id)
            .values(
                attempts=attempts,
                last_error=f"{exc.__class__.__name__}: {exc}"[:2000],
                next_attempt_at=now + timedelta(seconds=wait_s),
                failed_at=now if give_up else None,
            )
        )

    async def pending_counts(self) -> dict[str, int]:
        async with self._database.transaction() as session:
            rows = (
                await session.execute(
                    select(self._outbox.c.destination, func.count())
                    .where(self._outbox.c.sent_at.is_(None), self._outbox.c.failed_at.is_(None))
                    .group_by(self._outbox.c.destination)
                )
            ).all()
        counts = {str(d): int(n) for d, n in rows}
        for destination, count in counts.items():
            metrics.OUTBOX_PENDING.labels(self._service, destination).set(count)
        return counts

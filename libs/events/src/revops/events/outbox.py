"""The transactional outbox: derived events and CRM write-backs written in the same
transaction as the state that caused them, delivered after commit by a relay.

A crash before commit leaves no row; a crash after commit leaves a pending row that the
relay delivers; a crash after delivery but before the row is marked sent delivers it once
more, with the same event id, which consumers' inboxes ignore.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import metrics
from revops.events.catalogue import Envelope
from revops.events.codec import encode_event
from revops.events.consumer import is_infrastructure_error
from revops.events.db import Database, one_of
from revops.events.producer import EventProducer
from revops.events.settings import ServiceSettings

log = logging.getLogger(__name__)

KAFKA = "kafka"
# Even a Retry-After of 0 waits this long: a destination answering "later" at once
# must not be asked again in a tight loop.
RETRY_AFTER_FLOOR_S = 0.5
# On stop, calls in flight get this long to finish before they are cancelled.
STOP_GRACE_S = 2.0
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


class Undeliverable(Exception):
    """A sender's way to say "retrying cannot help until someone fixes this" (a rep with
    no owner id in the CRM): the row is marked failed at once with this message instead of
    using up its attempts; ``requeue_failed`` puts it back once fixed."""


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
    """Delivers pending outbox rows, in two loops that never wait for each other.

    Kafka rows are claimed with FOR UPDATE SKIP LOCKED, published and marked sent in one
    transaction (a publish takes milliseconds). Rows for other destinations (CRM calls,
    which may take seconds or hang) are leased instead: a short transaction pushes their
    ``next_attempt_at`` past the lease and commits, the calls run outside any transaction,
    at most ``concurrency`` at once, and each outcome is recorded in a transaction of its
    own. A crash mid-call leaves the row pending, sent again when the lease ends (the
    senders' calls are idempotent). Any number of instances can relay from one table."""

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
        concurrency: int | None = None,
        lease_s: float | None = None,
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
        self._concurrency = settings.outbox_send_concurrency if concurrency is None else concurrency
        self._lease = timedelta(seconds=settings.outbox_lease_s if lease_s is None else lease_s)
        # Cut off well within the lease, so the outcome is recorded before the row is due
        # again and no other instance sends it meanwhile.
        self._call_limit_s = self._lease.total_seconds() / 2
        self._retry_later_s = settings.outbox_retry_later_s
        self._retry_after_max_s = settings.outbox_retry_after_max_s
        self.passes = 0  # Kafka passes, for the tests and the curious
        self.send_passes = 0  # claims for other destinations
        self._keep_sent = timedelta(hours=settings.outbox_keep_sent_hours)
        self._next_purge = datetime.now(UTC)
        self._kafka_wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """Called after a commit that may have queued rows: deliver now, not at next poll."""
        self._kafka_wake.set()
        self._send_wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    async def run(self) -> None:
        loops = [
            asyncio.create_task(self._loop(self._kafka_pass, self._kafka_wake), name="outbox"),
            asyncio.create_task(self._loop(self._send_pass, self._send_wake), name="sends"),
        ]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a loop that died takes the relay with it (readiness fails)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._abandon_sends()

    async def _loop(self, one_pass: Callable[[], Awaitable[bool]], wake: asyncio.Event) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                more_waiting = await one_pass()
                delay = 0.2
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("outbox relay waiting for infrastructure", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 5)
                continue
            if not more_waiting:
                await self._wait_for_rows(wake)

    async def _kafka_pass(self) -> bool:
        delivered = await self.publish_once()
        await self._purge_when_due()
        return delivered >= self._batch_size  # a full batch says more are waiting

    async def _send_pass(self) -> bool:
        # Never "more waiting": a finished call wakes the loop when a slot is free.
        await self.send_once()
        return False

    async def _wait_for_rows(self, wake: asyncio.Event) -> None:
        """Until a commit says rows may be waiting, or the idle poll comes round.

        Under load the consumer commits many small batches a second; a relay pass per
        commit (a transaction, a query, often nothing to send) cost the consumer services
        a sixth of their CPU. So after a wake-up the relay waits a few milliseconds more
        and one pass takes every row committed meanwhile. A wake-up that arrives during a
        pass is kept, so no committed row waits for the idle poll."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), self._idle_poll_s)
            woken = True
        if woken and self._gather_s > 0 and not self._stopping.is_set():
            await asyncio.sleep(self._gather_s)
        wake.clear()

    async def relay_once(self) -> int:
        """One pass of each kind, waiting for the calls it started; returns the rows
        handled (for tests and tools: ``run`` does not wait for calls)."""
        published = await self.publish_once()
        started = await self.send_once()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()))
        return published + started

    def _pending(self, now: datetime) -> list[ColumnElement[bool]]:
        return [
            self._outbox.c.sent_at.is_(None),
            self._outbox.c.failed_at.is_(None),
            self._outbox.c.next_attempt_at <= now,
        ]

    async def publish_once(self) -> int:
        """Publish one batch of due Kafka rows; returns how many."""
        self.passes += 1
        now = datetime.now(UTC)
        async with self._database.transaction() as session:
            rows = (
                await session.execute(
                    select(self._outbox)
                    .where(*self._pending(now), self._outbox.c.destination == KAFKA)
                    .order_by(self._outbox.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            messages = [_message(r) for r in rows]
            await self._publish(messages)
            await self._mark_sent(session, [m.event_id for m in messages], KAFKA)
        return len(messages)

    async def send_once(self) -> int:
        """Lease due rows for the free call slots and start their calls; returns how many
        were started (their outcomes are recorded as each call ends)."""
        self.send_passes += 1
        free = self._concurrency - len(self._in_flight)
        if free <= 0 or not self._senders:
            return 0
        messages = await self._lease_due(free)
        for message in messages:
            task = asyncio.create_task(self._send(message), name=f"outbox-{message.event_id}")
            self._in_flight[message.event_id] = task
            task.add_done_callback(functools.partial(self._call_ended, message.event_id))
        return len(messages)

    def _call_ended(self, event_id: str, _: object) -> None:
        self._in_flight.pop(event_id, None)
        self._send_wake.set()  # a slot is free

    async def _lease_due(self, limit: int) -> list[OutboxMessage]:
        now = datetime.now(UTC)
        outbox = self._outbox
        # Only destinations this instance can send to: another instance may have the
        # sender this one lacks, and a row nobody can send stays pending (and counted).
        query = (
            select(outbox)
            .where(*self._pending(now), one_of(outbox.c.destination, list(self._senders)))
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if self._in_flight:  # a call outliving its lease is not started twice here
            query = query.where(~one_of(outbox.c.event_id, list(self._in_flight)))
        async with self._database.transaction() as session:
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(
                    update(outbox)
                    .where(one_of(outbox.c.id, [r.id for r in rows]))
                    .values(next_attempt_at=now + self._lease)
                )
        return [_message(r) for r in rows]

    async def _send(self, message: OutboxMessage) -> None:
        try:
            async with asyncio.timeout(self._call_limit_s):
                await self._senders[message.destination](message)
        except Exception as exc:
            await self._record(message, self._failure_values(message, exc), exc)
            return
        sent = {"sent_at": func.now(), "attempts": message.attempts + 1, "last_error": None}
        await self._record(message, sent)

    async def _record(
        self, message: OutboxMessage, values: dict[str, Any], exc: Exception | None = None
    ) -> None:
        """The call's outcome, in a transaction of its own. If Postgres is away the row
        keeps its lease and is sent again when the lease ends."""
        try:
            async with self._database.transaction() as session:
                await session.execute(
                    update(self._outbox)
                    .where(
                        self._outbox.c.event_id == message.event_id,
                        self._outbox.c.sent_at.is_(None),
                    )
                    .values(**values)
                )
        except Exception as record_exc:  # an unrecorded outcome must not end the relay
            log.warning(
                "outbox outcome not recorded; sent again after the lease",
                extra={"event_id": message.event_id, "error": str(record_exc)},
            )
            return
        if exc is None:
            metrics.OUTBOX_SENT.labels(self._service, message.destination).inc()
        else:
            self._log_failure(message, values, exc)

    def _failure_values(self, message: OutboxMessage, exc: Exception) -> dict[str, Any]:
        now = datetime.now(UTC)
        error = f"{exc.__class__.__name__}: {exc}"[:2000]
        if isinstance(exc, RetryLater):
            # The destination said "later": not a failure, so attempts stay as they are.
            wait_s = self._retry_later_s if exc.after_s is None else exc.after_s
            wait_s = min(max(wait_s, RETRY_AFTER_FLOOR_S), self._retry_after_max_s)
            return {"last_error": error, "next_attempt_at": now + timedelta(seconds=wait_s)}
        attempts = message.attempts + 1
        give_up = isinstance(exc, Undeliverable) or attempts >= self._max_attempts
        wait_s = min(2.0**attempts, 300.0)  # exponential backoff, capped at 5 minutes
        return {
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": now + timedelta(seconds=wait_s),
            "failed_at": now if give_up else None,
        }

    def _log_failure(self, message: OutboxMessage, values: dict[str, Any], exc: Exception) -> None:
        metrics.OUTBOX_FAILURES.labels(self._service, message.destination).inc()
        log.warning(
            "outbox delivery failed",
            extra={
                "event_id": message.event_id,
                "destination": message.destination,
                "attempts": values.get("attempts", message.attempts),
                "retry_later": isinstance(exc, RetryLater),
                "gave_up": values.get("failed_at") is not None,
                "error": str(exc)[:300],
            },
        )

    async def _abandon_sends(self) -> None:
        """On stop: give calls in flight a moment, then cancel them and end their leases,
        so the next instance sends those rows at once rather than after the lease."""
        if not self._in_flight:
            return
        tasks = dict(self._in_flight)
        _, unfinished = await asyncio.wait(tasks.values(), timeout=STOP_GRACE_S)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        cancelled = [event_id for event_id, task in tasks.items() if task in unfinished]
        if not cancelled:
            return
        with contextlib.suppress(Exception):  # best effort: the lease ends anyway
            async with self._database.transaction() as session:
                await session.execute(
                    update(self._outbox)
                    .where(
                        one_of(self._outbox.c.event_id, cancelled),
                        self._outbox.c.sent_at.is_(None),
                        self._outbox.c.failed_at.is_(None),
                    )
                    .values(next_attempt_at=func.now())
                )

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


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(row.event_id, row.destination, row.topic, row.key, row.value, row.attempts)


async def requeue_failed(session: AsyncSession, outbox: Table, *where: ColumnElement[bool]) -> int:
    """Put rows that gave up back in the queue, due now with a fresh count of attempts
    (after the cause was fixed: a rep's CRM id set, a token renewed); ``where`` narrows
    which. Returns how many. ``last_error`` is kept until the next attempt replaces it."""
    result = await session.execute(
        update(outbox)
        .where(outbox.c.failed_at.is_not(None), outbox.c.sent_at.is_(None), *where)
        .values(failed_at=None, attempts=0, next_attempt_at=func.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]

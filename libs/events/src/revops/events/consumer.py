"""The consumer runner every service uses.

Guarantees, each covered by a test in libs/events/tests:
- a batch is applied in ONE database transaction together with the inbox rows of its
  event ids, so a redelivered event changes nothing;
- the service's tables are analysed while they grow fast (``planner``), so a fresh
  schema is not read with whole-table scans;
- a batch's events are applied topic by topic in the order the service lists its topics,
  each partition's in its order (Kafka's only order);
- where the service defines an ``applied_offsets`` table, the batch's transaction also
  records how far each partition is applied, and handlers can ask for the partitions'
  end offsets (``end_offsets_of``): together they tell whether every record that was in
  Kafka at some moment has been applied, by any instance of the service;
- Kafka offsets are committed only after that transaction committed (while the next
  batch is applied, one commit in flight at a time, so they never go backwards);
- an event that keeps failing is retried a few times, then sent to ``<topic>.dlq`` with
  the error and its original coordinates in headers, and the rest is applied;
- Postgres or Kafka being unreachable is not the event's fault: the batch is retried
  until they are back, nothing is dead-lettered for it;
- on a rebalance, revocation waits for the batch in flight and its offsets to commit; on
  stop, the batch in flight finishes, commits, and the consumer leaves its group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy import BigInteger, Integer, String, Table, bindparam, case, select
from sqlalchemy import func as sa_func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from revops.events import metrics
from revops.events.catalogue import Event
from revops.events.codec import UndecodableEvent, decode_event
from revops.events.db import Database
from revops.events.logs import event_context
from revops.events.planner import Statistics
from revops.events.producer import EventProducer, KafkaUnavailable
from revops.events.settings import ServiceSettings
from revops.events.topics import TopicSpec

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
# Optional: the batch's new events at once (already deduplicated by the inbox), for
# services that decide many events in a few queries. The per-event Handler still applies
# events one at a time when a batch failed.
BatchHandler = Callable[[AsyncSession, list[Event]], Awaitable[None]]
Record = Any  # aiokafka.structs.ConsumerRecord (untyped upstream)
# "topic:partition" -> offset: JSON-storable partition positions.
Offsets = dict[str, int]
EndOffsets = Callable[[Sequence[str]], Awaitable[Offsets]]
_END_OFFSETS = "revops.end_offsets"


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def partition_offsets(state_offsets: Mapping[str, Sequence[Any]]) -> Offsets:
    """An event's state offsets (topic -> each partition's end offset) by partition key;
    entries that are not offsets are left out."""
    return {
        partition_key(topic, partition): end
        for topic, ends in state_offsets.items()
        if isinstance(ends, list | tuple)
        for partition, end in enumerate(ends)
        if isinstance(end, int) and end > 0
    }


def end_offsets_of(session: AsyncSession) -> EndOffsets | None:
    """The end offsets of the given topics' partitions, asked of Kafka now (read-committed:
    every acknowledged record is below them); None outside a consumer's batch."""
    found: EndOffsets | None = session.info.get(_END_OFFSETS)
    return found


# Connection exceptions, shutdown / starting up, too many connections; and a deadlock or
# serialization failure between two instances' transactions, which is nobody's fault and
# goes away when the batch is applied again.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40P01", "40001")


def is_infrastructure_error(exc: BaseException) -> bool:
    """Errors that say Postgres or Kafka is away, not that the event is bad."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        code = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
        if code.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return isinstance(
        exc,
        OperationalError | InterfaceError | OSError | TimeoutError | KafkaUnavailable | KafkaError,
    )


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    error: str
    attempts: int


def in_apply_order(
    batches: Mapping[TopicPartition, Sequence[Record]], topic_names: Sequence[str]
) -> list[Record]:
    """A fetch's records as one batch: topic by topic in the order the service lists its
    topics, partition by partition, each partition's records in their order.

    Kafka orders records only within a partition, so whole partitions one after the other,
    in any order, is an order the consumer could have received them in. This one puts a
    topic's events side by side, so a batch handler that applies runs of one kind applies
    one run per topic, not one per partition: the router's batches at 1,000 events/s were
    ~20 statements, most of them one run's loads repeated, in the fetch's partition order.
    """
    rank = {name: i for i, name in enumerate(topic_names)}
    order = sorted(batches, key=lambda tp: (rank.get(tp.topic, len(rank)), tp.topic, tp.partition))
    return [record for tp in order for record in batches[tp]]


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        lock: asyncio.Lock,
        offsets_committed: Callable[[], Awaitable[None]],
        assigned: Callable[[set[TopicPartition]], Awaitable[None]],
    ) -> None:
        self._lock = lock
        self._offsets_committed = offsets_committed
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let the batch in flight commit its transaction and offsets before the
        # partitions move, so the next owner starts exactly after it.
        async with self._lock:
            await self._offsets_committed()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})
        await self._assigned(assigned)


def applied_offsets_statement(table: Table) -> Any:
    """Upsert the next offset of each (topic, partition) of three arrays; never backwards
    (a redelivered batch after a rebalance writes what is already there), and when it
    moves, note the time (the transaction's)."""
    rows = (
        sa_func.unnest(
            bindparam("topics", type_=ARRAY(String)),
            bindparam("partitions", type_=ARRAY(Integer)),
            bindparam("next_offsets", type_=ARRAY(BigInteger)),
        )
        .table_valued("topic", "partition", "next_offset")
        .render_derived()
    )
    stmt = pg_insert(table).from_select(
        ["topic", "partition", "next_offset"],
        select(rows.c.topic, rows.c.partition, rows.c.next_offset),
    )
    moved = stmt.excluded.next_offset > table.c.next_offset
    return stmt.on_conflict_do_update(
        index_elements=["topic", "partition"],
        set_={
            "next_offset": sa_func.greatest(table.c.next_offset, stmt.excluded.next_offset),
            "advanced_at": case((moved, sa_func.now()), else_=table.c.advanced_at),
        },
    )


# How long a batch may wait to read the state its events need (a fetch round trip or two).
_READ_UP_TO_STATE_S = 0.1


def _state_offsets_needed(batches: Mapping[TopicPartition, Sequence[Record]]) -> dict[str, int]:
    """The highest state offset each partition has in the batch's events (only the records
    that carry some are parsed)."""
    needed: dict[str, int] = {}
    for records in batches.values():
        for record in records:
            if record.value is None or b'"state_offsets":{' not in record.value:
                continue
            try:
                offsets = orjson.loads(record.value).get("state_offsets") or {}
            except orjson.JSONDecodeError:
                continue  # the batch dead-letters it
            for key, end in partition_offsets(offsets).items():
                if end > needed.get(key, 0):
                    needed[key] = end
    return needed


async def _next_offset(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    batches: Mapping[TopicPartition, Sequence[Record]],
) -> int:
    """The offset after the batch's last record of ``tp``, else the consumer's position."""
    records = batches.get(tp)
    if records:
        return int(records[-1].offset) + 1
    return int(await consumer.position(tp))


def next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    positions: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        positions[key] = max(positions.get(key, 0), record.offset + 1)
    return positions


def claim_statement(inbox: Table) -> ReturningInsert[Any]:
    """INSERT the (event id, topic) pairs of two arrays into the inbox, skipping ids already
    there; RETURNING the ids that were new."""
    pairs = (
        sa_func.unnest(
            bindparam("event_ids", type_=ARRAY(String)), bindparam("topics", type_=ARRAY(String))
        )
        .table_valued("event_id", "topic")
        .render_derived()
    )
    return (
        pg_insert(inbox)
        .from_select(["event_id", "topic"], select(pairs.c.event_id, pairs.c.topic))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(inbox.c.event_id)
    )


class ConsumerRunner:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        database: Database,
        inbox: Table,
        topics: Sequence[TopicSpec],
        handle: Handler,
        producer: EventProducer,
        group_id: str | None = None,
        after_commit: Callable[[], None] | None = None,
        handle_batch: BatchHandler | None = None,
        applied_offsets: Table | None = None,
    ) -> None:
        self._settings = settings
        self._service = settings.service_name
        self._database = database
        self._inbox = inbox
        self._claim_statement = claim_statement(inbox)
        self._offsets_statement = (
            applied_offsets_statement(applied_offsets) if applied_offsets is not None else None
        )
        self.statistics = Statistics(
            [t for t in inbox.metadata.tables.values() if t.schema == inbox.schema]
        )
        self._topic_names = [t.name(settings.topic_prefix) for t in topics]
        self._handle = handle
        self._handle_batch = handle_batch
        self._producer = producer
        self._group_id = group_id or f"{settings.topic_prefix}{settings.service_name}"
        self._after_commit = after_commit
        self._stopping = asyncio.Event()
        self._lag_recorded_at = 0.0
        self._batch_lock = asyncio.Lock()
        self._committing: asyncio.Future[None] | None = None
        self._analysing: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.started = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, commit, and leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._group_id,
            client_id=f"{self._group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=max(1000, self._settings.consumer_session_timeout_ms // 5),
            max_poll_interval_ms=300_000,
            isolation_level="read_committed",
            fetch_min_bytes=self._settings.consumer_fetch_min_bytes,
            fetch_max_wait_ms=self._settings.consumer_fetch_wait_ms,
        )
        listener = _WaitForBatch(
            self._batch_lock,
            self._offsets_committed,
            lambda assigned: self._note_committed(consumer, assigned),
        )
        consumer.subscribe(self._topic_names, listener=listener)
        await self._start_with_retry(consumer)
        self._consumer = consumer
        self.started.set()
        log.info("consumer started", extra={"group": self._group_id, "topics": self._topic_names})
        try:
            while not self._stopping.is_set():
                batches = await self._poll(consumer)
                if self._committing is not None and self._committing.done():
                    await self._offsets_committed()  # a failed commit fails the loop now
                if batches:
                    async with self._batch_lock:
                        await self._apply_and_commit(consumer, batches)
                await self._record_lag(consumer)
        finally:
            self._consumer = None
            try:
                await self._offsets_committed()
            except Exception as exc:  # the inbox makes the redelivery harmless
                log.warning("last offset commit failed", extra={"error": str(exc)})
            await consumer.stop()  # leaves the group: partitions move at once
            if self._analysing is not None:
                await self._analysing
            log.info("consumer stopped", extra={"group": self._group_id})

    async def _start_with_retry(self, consumer: AIOKafkaConsumer) -> None:
        delay = 0.5
        while True:
            try:
                await consumer.start()
                return
            except (KafkaError, OSError) as exc:
                if self._stopping.is_set():
                    raise
                log.warning("kafka unreachable, retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def _poll(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Record]]:
        poll = asyncio.ensure_future(
            consumer.getmany(
                timeout_ms=self._settings.consumer_poll_ms,
                max_records=self._settings.consumer_batch_max,
            )
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if poll not in done:
            poll.cancel()
            return {}
        result: dict[TopicPartition, list[Record]] = poll.result()
        if result and self._offsets_statement is not None:
            await self._read_up_to_state_offsets(consumer, result)
        return result

    async def _read_up_to_state_offsets(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]
    ) -> None:
        """Events that carry state offsets (a new lead, stamped by ingest) need every record
        below them applied first. Of the partitions this consumer owns, read what the
        fetch left out (the fetcher skips a partition while records of it wait in its
        buffer) up to those offsets, into this batch: it applies them before the events
        that need them, instead of holding those events until the next batch. Bounded in
        time: what is not read by then is the next batch's."""
        needed = _state_offsets_needed(batches)
        if not needed:
            return
        deadline = time.monotonic() + _READ_UP_TO_STATE_S
        try:
            owned = {partition_key(tp.topic, tp.partition): tp for tp in consumer.assignment()}
            while True:
                behind = []
                for key, end in needed.items():
                    tp = owned.get(key)
                    if tp is not None and end > await _next_offset(consumer, tp, batches):
                        behind.append(tp)
                left_ms = int((deadline - time.monotonic()) * 1000)
                if not behind or left_ms <= 0:
                    return
                more = await consumer.getmany(*behind, timeout_ms=left_ms)
                for tp, records in more.items():
                    batches.setdefault(tp, []).extend(records)
        except (IllegalStateError, KafkaError):  # a rebalance took them away: next batch
            return

    # --- one batch -------------------------------------------------------------------

    async def _apply_and_commit(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]
    ) -> None:
        records = in_apply_order(batches, self._topic_names)
        for tp, tp_records in batches.items():
            metrics.EVENTS_CONSUMED.labels(self._service, tp.topic).inc(len(tp_records))
        started = time.perf_counter()
        delay = 0.2
        while True:
            try:
                dead = await self.apply_batch(records)
                await self._dead_letter(dead)
                break
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                metrics.INFRA_RETRIES.labels(self._service).inc()
                log.warning(
                    "infrastructure unavailable, retrying batch",
                    extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"},
                )
                if self._stopping.is_set():
                    # Not committed: the batch is redelivered after restart.
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
        if self._after_commit is not None:
            self._after_commit()
        # The offsets go to Kafka while the next batch is applied: one round trip less per
        # batch. A crash before they land redelivers events the inbox already holds.
        await self._offsets_committed()
        self._committing = asyncio.ensure_future(self._commit(consumer, batches))
        metrics.BATCH_SECONDS.labels(self._service).observe(time.perf_counter() - started)

    async def _offsets_committed(self) -> None:
        """Wait for the offsets of the previous batch (one commit in flight at a time, so a
        later batch's offsets can never be overtaken by an earlier one's)."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def apply_batch(self, records: Sequence[Record]) -> list[DeadLetter]:
        """Apply records in one transaction; returns the records to dead-letter.

        Fast path: the whole batch in one transaction without savepoints. If any event
        fails, the transaction is rolled back and the batch is applied again one event at
        a time in savepoints, so one poison event costs only itself.
        """
        decoded: list[tuple[Record, Event]] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append((record, decode_event(record.value)))
            except UndecodableEvent as exc:
                dead.append(DeadLetter(record, f"undecodable event: {exc}", attempts=1))
        try:
            async with self._database.transaction() as session:
                await self._record_offsets(session, records)
                await self._apply_all(session, decoded)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            log.warning("batch failed, applying one event at a time", exc_info=True)
            dead.extend(await self._apply_one_by_one(records, decoded))
        return dead

    async def _record_offsets(self, session: AsyncSession, records: Sequence[Record]) -> None:
        """Before the handlers run, so they see their own batch as applied; dead letters
        count as applied too (they will never be)."""
        if self._consumer is not None:
            session.info[_END_OFFSETS] = self.end_offsets
        if self._offsets_statement is not None and records:
            await self._upsert_offsets(session, next_offsets(records))

    async def _note_committed(
        self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> None:
        """Record the group's committed offsets of newly assigned partitions as applied
        (they are committed only after the database committed): a partition with nothing
        new to read, or a schema that predates ``applied_offsets``, still shows how far
        it is applied."""
        if self._offsets_statement is None or not assigned:
            return
        try:
            committed = {tp: await consumer.committed(tp) for tp in sorted(assigned)}
            known = {(tp.topic, tp.partition): int(o) for tp, o in committed.items() if o}
            if known:
                async with self._database.transaction() as session:
                    await self._upsert_offsets(session, known)
        except Exception as exc:  # only a waiting lead's wait depends on it: go on
            log.warning("recording the committed offsets failed", extra={"error": str(exc)})

    async def _upsert_offsets(
        self, session: AsyncSession, positions: Mapping[tuple[str, int], int]
    ) -> None:
        assert self._offsets_statement is not None
        await session.execute(
            self._offsets_statement,
            {
                "topics": [topic for topic, _ in positions],
                "partitions": [partition for _, partition in positions],
                "next_offsets": list(positions.values()),
            },
        )

    async def end_offsets(self, topics: Sequence[str]) -> Offsets:
        """The topics' partitions' end offsets (read-committed), one request to Kafka."""
        consumer = self._consumer
        if consumer is None:
            raise KafkaUnavailable("the consumer is not running")
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions)
        return {partition_key(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}

    async def _apply_all(self, session: AsyncSession, decoded: list[tuple[Record, Event]]) -> None:
        unique: dict[str, tuple[Record, Event]] = {}
        for record, event in decoded:
            unique.setdefault(event.id, (record, event))
        if not unique:
            return
        claimed = await self._claim(session, [(r.topic, e.id) for r, e in unique.values()])
        if self.statistics.note_applied(len(claimed)) and self._analysing is None:
            self._analysing = asyncio.create_task(self._analyse())
        new_events: list[Event] = []
        for record, event in unique.values():
            if event.id in claimed:
                new_events.append(event)
            else:
                metrics.EVENTS_DEDUPLICATED.labels(self._service, record.topic).inc()
        if self._handle_batch is not None:
            await self._handle_batch(session, new_events)
        else:
            for event in new_events:
                with event_context(event.id):
                    await self._handle(session, event)
        for event in new_events:
            metrics.EVENTS_APPLIED.labels(self._service, event.type).inc()
        duplicates_in_batch = len(decoded) - len(unique)
        if duplicates_in_batch:
            metrics.EVENTS_DEDUPLICATED.labels(self._service, "batch").inc(duplicates_in_batch)

    async def _analyse(self) -> None:
        try:
            await self.statistics.analyse(self._database)
        except Exception as exc:  # statistics only make plans better: never fail a batch
            log.warning("analysing the tables failed", extra={"error": str(exc)})
        finally:
            self._analysing = None

    async def _claim(self, session: AsyncSession, ids: list[tuple[str, str]]) -> set[str]:
        """Insert the inbox rows; the ids that come back were never applied before.

        One statement with two array parameters whatever the batch's size, so Postgres
        and asyncpg prepare it once (a multi-row VALUES list is a new statement for every
        batch length, and compiling it cost 10-25 % of a batch). A concurrent consumer
        inserting the same id blocks on the unique index until we commit or roll back, so
        an event can never be applied by two transactions."""
        result = await session.execute(
            self._claim_statement,
            {"event_ids": [event_id for _, event_id in ids], "topics": [t for t, _ in ids]},
        )
        return set(result.scalars())

    async def _apply_one_by_one(
        self, records: Sequence[Record], decoded: list[tuple[Record, Event]]
    ) -> list[DeadLetter]:
        dead: list[DeadLetter] = []
        attempts = self._settings.consumer_max_attempts
        async with self._database.transaction() as session:
            await self._record_offsets(session, records)
            seen: set[str] = set()
            for record, event in decoded:
                if event.id in seen:
                    continue
                seen.add(event.id)
                error = await self._apply_with_retries(session, record, event, attempts)
                if error is not None:
                    dead.append(DeadLetter(record, error, attempts))
        return dead

    async def _apply_with_retries(
        self, session: AsyncSession, record: Record, event: Event, attempts: int
    ) -> str | None:
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                async with session.begin_nested():
                    claimed = await self._claim(session, [(record.topic, event.id)])
                    if event.id in claimed:
                        with event_context(event.id):
                            await self._handle(session, event)
                        metrics.EVENTS_APPLIED.labels(self._service, event.type).inc()
                    else:
                        metrics.EVENTS_DEDUPLICATED.labels(self._service, record.topic).inc()
                return None
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                error = f"{exc.__class__.__name__}: {exc}"[:4000]
                with event_context(event.id):
                    log.warning("event failed", extra={"attempt": attempt, "error": error[:500]})
        return error

    async def _dead_letter(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        records = []
        for letter in dead:
            record = letter.record
            headers = [
                *(record.headers or ()),
                ("dlq-error", letter.error.encode()),
                ("dlq-attempts", str(letter.attempts).encode()),
                ("dlq-topic", record.topic.encode()),
                ("dlq-partition", str(record.partition).encode()),
                ("dlq-offset", str(record.offset).encode()),
                ("dlq-consumer", self._group_id.encode()),
            ]
            key = record.key.decode(errors="replace") if record.key else ""
            records.append((f"{record.topic}.dlq", key, record.value or b"", headers))
            metrics.EVENTS_DEAD_LETTERED.labels(self._service, record.topic).inc()
            log.error(
                "event dead-lettered",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": letter.error[:500],
                },
            )
        await self._producer.publish_records(records)

    async def _commit(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another member, which starts from the last committed
            # offset; the inbox makes it skip what this batch applied.
            log.warning("offset commit refused after rebalance", extra={"error": str(exc)})

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        # Once a second is plenty for a gauge scraped every 15 s or so; after every poll
        # it cost a position lookup and a label lookup per partition, 36 for the router,
        # dozens of times a second under a trickle of events.
        now = time.monotonic()
        if now < self._lag_recorded_at + 1.0:
            return
        self._lag_recorded_at = now
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except (IllegalStateError, KafkaError):
                continue
            metrics.CONSUMER_LAG.labels(self._service, tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )


__all__ = [
    "BatchHandler",
    "ConsumerRunner",
    "DeadLetter",
    "EndOffsets",
    "Handler",
    "Offsets",
    "end_offsets_of",
    "is_infrastructure_error",
    "partition_key",
]

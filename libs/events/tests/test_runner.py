"""The consumer runner's and the outbox's guarantees, against the real broker and Postgres.

Each test fails if its guarantee breaks: the handler counts how often each event is
applied, so a double application shows as times == 2, a loss as a missing row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from itertools import pairwise
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from sqlalchemy import Column, Integer, String, Table, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events import admin, topics
from revops.events.catalogue import FormSubmitted, FormSubmittedEvent, make_event
from revops.events.consumer import ConsumerRunner, in_apply_order
from revops.events.db import Database, service_metadata
from revops.events.outbox import OutboxRelay, add_event
from revops.events.producer import EventProducer, KafkaUnavailable
from revops.events.settings import KafkaSettings, ServiceSettings
from revops.events.testing import (
    database_url_for_tests,
    eventually,
    publish,
    read_records,
    unique_prefix,
)

SCHEMA = "events_test"
metadata = service_metadata(SCHEMA)
applied = Table(
    "applied",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("times", Integer, nullable=False),
)
INBOX = metadata.tables[f"{SCHEMA}.inbox"]
OUTBOX = metadata.tables[f"{SCHEMA}.outbox"]
URL = database_url_for_tests("revops")  # the admin role may create this test-only schema


@pytest.fixture(scope="module")
async def database(infra: None) -> AsyncIterator[Database]:
    engine = create_async_engine(URL)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    db = Database(URL, SCHEMA)
    yield db
    await db.dispose()


@pytest.fixture
async def settings(database: Database) -> AsyncIterator[ServiceSettings]:
    async with database.transaction() as session:
        await session.execute(text("TRUNCATE applied, inbox, outbox"))
    s = ServiceSettings(
        service_name="events-test",
        topic_prefix=unique_prefix(),
        database_url=URL,
        consumer_poll_ms=50,
        consumer_session_timeout_ms=6000,
    )
    await admin.ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix, [topics.FORMS])
    yield s
    await admin.delete_topics_with_prefix(s.kafka_bootstrap_servers, s.topic_prefix)


def form(event_id: str, form_type: str = "demo_request") -> FormSubmittedEvent:
    return make_event(
        FormSubmittedEvent,
        id=event_id,
        source="hubspot",
        occurred_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        payload=FormSubmitted(email=f"{event_id}@example.com", form_type=form_type),
    )


async def count_and_poison(session, event) -> None:
    if event.payload.form_type == "poison":
        raise ValueError("poison form: cannot be applied")
    await session.execute(
        pg_insert(applied)
        .values(event_id=event.id, times=1)
        .on_conflict_do_update(index_elements=["event_id"], set_={"times": applied.c.times + 1})
    )


async def applied_rows(database: Database) -> dict[str, int]:
    async with database.transaction() as session:
        return {r.event_id: r.times for r in (await session.execute(select(applied))).all()}


def runner(settings, database, producer, handle=count_and_poison, group=None) -> ConsumerRunner:
    return ConsumerRunner(
        settings=settings,
        database=database,
        inbox=INBOX,
        topics=[topics.FORMS],
        handle=handle,
        producer=producer,
        group_id=group,
    )


async def run_until(r: ConsumerRunner, check, timeout_s: float = 30):
    task = asyncio.create_task(r.run())
    try:
        return await eventually(check, timeout_s=timeout_s)
    finally:
        r.stop()
        await asyncio.wait_for(task, 20)


def test_a_batch_is_applied_topic_by_topic_each_partition_in_its_order():
    def part(
        topic: str, partition: int, offsets: range
    ) -> tuple[TopicPartition, list[SimpleNamespace]]:
        tp = TopicPartition(topic, partition)
        return tp, [SimpleNamespace(topic=topic, partition=partition, offset=o) for o in offsets]

    fetched = dict(  # as a fetch returns them: partitions in no particular order
        [
            part("people", 1, range(7, 9)),
            part("forms", 2, range(3, 5)),
            part("unlisted", 0, range(0, 1)),
            part("people", 0, range(4, 6)),
            part("forms", 0, range(10, 13)),
        ]
    )
    ordered = in_apply_order(fetched, ["forms", "people"])
    assert [(r.topic, r.partition, r.offset) for r in ordered] == [
        ("forms", 0, 10),
        ("forms", 0, 11),
        ("forms", 0, 12),
        ("forms", 2, 3),
        ("forms", 2, 4),
        ("people", 0, 4),
        ("people", 0, 5),
        ("people", 1, 7),
        ("people", 1, 8),
        ("unlisted", 0, 0),  # a topic the service does not list goes last, still in order
    ]


async def test_an_event_delivered_twice_is_applied_once(settings, database):
    producer = EventProducer(settings)
    r = runner(settings, database, producer)
    task = asyncio.create_task(r.run())
    try:
        await publish(settings, [form("dup-1"), form("other-1")])
        await eventually(lambda: fully_committed(settings))
        # The sender's retry, in a later batch: same event id.
        await publish(settings, [form("dup-1")])
        await eventually(lambda: fully_committed(settings))
    finally:
        r.stop()
        await asyncio.wait_for(task, 20)
    assert await applied_rows(database) == {"dup-1": 1, "other-1": 1}
    await producer.stop()


async def test_a_crash_between_db_commit_and_offset_commit_applies_nothing_twice(
    settings, database, monkeypatch
):
    await publish(settings, [form(f"crash-{i}") for i in range(20)])
    producer = EventProducer(settings)
    crashing = runner(settings, database, producer)

    async def crash(*args, **kwargs):
        raise RuntimeError("killed after the database commit, before the offset commit")

    monkeypatch.setattr(crashing, "_commit", crash)
    with pytest.raises(RuntimeError, match="killed after"):
        await asyncio.wait_for(crashing.run(), 30)
    first = await applied_rows(database)
    assert first and set(first.values()) == {1}

    monkeypatch.undo()
    restarted = runner(settings, database, producer)
    # The restarted consumer re-reads the batch whose offsets were never committed.
    await run_until(restarted, lambda: fully_committed(settings))
    rows = await applied_rows(database)
    assert len(rows) == 20
    assert set(rows.values()) == {1}, "an event was applied twice after the crash"
    await producer.stop()


async def test_offsets_are_committed_in_order_while_the_next_batch_is_applied(
    settings, database, monkeypatch
):
    producer = EventProducer(settings)
    r = runner(settings, database, producer)
    commit, apply_batch = r._commit, r.apply_batch
    in_flight, most_in_flight, applied_meanwhile = 0, 0, 0
    sent: list[dict[TopicPartition, int]] = []

    async def slow_commit(consumer, batches):  # a broker slow to answer
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        sent.append({tp: records[-1].offset + 1 for tp, records in batches.items()})
        await asyncio.sleep(0.5)
        await commit(consumer, batches)
        in_flight -= 1

    async def counting_apply(records):
        nonlocal applied_meanwhile
        applied_meanwhile += in_flight > 0
        return await apply_batch(records)

    monkeypatch.setattr(r, "_commit", slow_commit)
    monkeypatch.setattr(r, "apply_batch", counting_apply)
    task = asyncio.create_task(r.run())
    try:
        await producer.publish([form("pipe-0")])
        await eventually(lambda: fully_committed(settings))  # the consumer is in its group
        for i in range(1, 5):  # one event per batch, each sent once the one before is applied
            await producer.publish([form(f"pipe-{i}")])
            await eventually(lambda: _at_least(database, i + 1))  # noqa: B023 (awaited here)
        await eventually(lambda: fully_committed(settings))
    finally:
        r.stop()
        await asyncio.wait_for(task, 20)
    assert applied_meanwhile >= 1, "no batch was applied while the last offsets were in flight"
    assert most_in_flight == 1, "two offset commits were in flight at once"
    for before, after in pairwise(sent):
        assert all(after[tp] >= offset for tp, offset in before.items() if tp in after)
    assert await applied_rows(database) == {f"pipe-{i}": 1 for i in range(5)}
    await producer.stop()


async def test_a_poison_event_goes_to_the_dlq_and_the_rest_is_applied(settings, database):
    # One key, one partition: the poison event sits in the middle of one batch.
    events = [form("ok-1"), form("bad-1", "poison"), form("ok-2")]
    await publish(settings, events)
    producer = EventProducer(settings)

    async def good_ones_applied():
        rows = await applied_rows(database)
        assert set(rows) == {"ok-1", "ok-2"}

    await run_until(runner(settings, database, producer), good_ones_applied)
    dlq = topics.FORMS.dlq_name(settings.topic_prefix)
    [record] = await read_records(settings, dlq, 1)
    headers = {k: v.decode() for k, v in record.headers}
    assert "poison form" in headers["dlq-error"]
    assert headers["dlq-topic"] == topics.FORMS.name(settings.topic_prefix)
    assert headers["dlq-attempts"] == "3"
    assert int(headers["dlq-offset"]) >= 0
    assert headers["event-id"] == "bad-1"
    async with database.transaction() as session:
        inbox_ids = set((await session.execute(select(INBOX.c.event_id))).scalars())
    assert "bad-1" not in inbox_ids, "a dead-lettered event must stay replayable"
    await producer.stop()


async def test_an_undecodable_record_goes_to_the_dlq(settings, database):
    raw = EventProducer(settings)
    topic = topics.FORMS.name(settings.topic_prefix)
    await raw.publish_records([(topic, "k", b"{not json", [])])
    await publish(settings, [form("after-garbage")])

    async def applied_after():
        assert "after-garbage" in await applied_rows(database)

    await run_until(runner(settings, database, raw), applied_after)
    [record] = await read_records(settings, topics.FORMS.dlq_name(settings.topic_prefix), 1)
    assert record.value == b"{not json"
    assert b"undecodable" in dict(record.headers)["dlq-error"]
    await raw.stop()


async def test_an_unreachable_database_is_retried_not_dead_lettered(settings, database):
    failures = {"left": 2}

    async def flaky(session, event):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
        await count_and_poison(session, event)

    await publish(settings, [form("flaky-1")])
    producer = EventProducer(settings)

    async def applied_once():
        assert await applied_rows(database) == {"flaky-1": 1}

    await run_until(runner(settings, database, producer, handle=flaky), applied_once)
    assert failures["left"] == 0
    dlq = topics.FORMS.dlq_name(settings.topic_prefix)
    lags = await admin.group_lag(settings.kafka_bootstrap_servers, "nobody", [dlq])
    assert sum(p.end for p in lags) == 0, "nothing may be dead-lettered for an outage"
    await producer.stop()


async def test_two_consumers_in_one_group_apply_every_event_exactly_once(settings, database):
    await publish(settings, [form(f"rb-{i}") for i in range(300)])
    producer = EventProducer(settings)
    first = runner(settings, database, producer)
    second = runner(settings, database, producer)
    task = asyncio.create_task(first.run())
    await eventually(lambda: _at_least(database, 1), timeout_s=20)
    second_task = asyncio.create_task(second.run())  # joins: partitions are rebalanced
    await publish(settings, [form(f"rb-{i}") for i in range(300, 600)])
    try:
        await eventually(lambda: _at_least(database, 600), timeout_s=60)
    finally:
        first.stop()
        second.stop()
        await asyncio.wait_for(asyncio.gather(task, second_task), 30)
    rows = await applied_rows(database)
    assert len(rows) == 600
    assert set(rows.values()) == {1}
    await producer.stop()


async def fully_committed(settings, group_suffix: str = "events-test") -> None:
    lags = await admin.group_lag(
        settings.kafka_bootstrap_servers,
        f"{settings.topic_prefix}{group_suffix}",
        [topics.FORMS.name(settings.topic_prefix)],
    )
    assert lags, "the group's partitions must be visible"
    assert sum(p.lag for p in lags) == 0


async def _at_least(database: Database, n: int) -> None:
    assert len(await applied_rows(database)) >= n


async def _statistics_of(database: Database, table: str) -> tuple[int, datetime | None]:
    async with database.transaction() as session:
        found = await session.execute(
            text(
                "SELECT n_mod_since_analyze, last_analyze FROM pg_stat_user_tables"
                " WHERE schemaname = :schema AND relname = :table"
            ),
            {"schema": SCHEMA, "table": table},
        )
        changed, analysed_at = found.one()
        return int(changed), analysed_at


async def test_a_table_that_outgrew_its_statistics_is_analysed_beside_the_batches(
    settings, database
):
    async def changed_since_analysed(n: int) -> None:
        changed, analysed_at = await _statistics_of(database, "applied")
        assert changed >= n
        assert analysed_at is None, "analysed before the check point"

    async def analysed() -> None:
        # Not "changed < 40": Postgres flushes other sessions' counts up to a second
        # late, so an earlier test's rows may still land in n_mod_since_analyze.
        _, analysed_at = await _statistics_of(database, "applied")
        assert analysed_at is not None

    producer = EventProducer(settings)
    r = runner(settings, database, producer)
    r.statistics.first_check_after = 30
    task = asyncio.create_task(r.run())
    try:
        await publish(settings, [form(f"grow-{i}") for i in range(20)])
        await eventually(lambda: _at_least(database, 20))
        await eventually(lambda: changed_since_analysed(20))  # Postgres's counts are current
        await publish(settings, [form(f"grow-{i}") for i in range(20, 40)])
        await eventually(lambda: _at_least(database, 40))
        await eventually(analysed)
    finally:
        r.stop()
        await asyncio.wait_for(task, 20)
    await producer.stop()


async def test_stop_finishes_the_batch_commits_and_leaves(settings, database):
    await publish(settings, [form(f"stop-{i}") for i in range(50)])
    producer = EventProducer(settings)
    r = runner(settings, database, producer)
    task = asyncio.create_task(r.run())
    await eventually(lambda: _at_least(database, 50), timeout_s=30)
    started = time.monotonic()
    r.stop()
    await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 10
    await fully_committed(settings)
    await producer.stop()


async def test_the_outbox_publishes_committed_rows_once_and_rolled_back_rows_never(
    settings, database
):
    kept, rolled_back = form("outbox-kept"), form("outbox-rolled-back")
    async with database.transaction() as session:
        await add_event(session, OUTBOX, kept, settings.topic_prefix)
        await add_event(session, OUTBOX, kept, settings.topic_prefix)  # replayed input
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await add_event(session, OUTBOX, rolled_back, settings.topic_prefix)
            raise RuntimeError("the handler failed after queueing")
    producer = EventProducer(settings)
    relay = OutboxRelay(settings=settings, database=database, outbox=OUTBOX, producer=producer)
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    topic = topics.FORMS.name(settings.topic_prefix)
    [record] = await read_records(settings, topic, 1)
    assert dict(record.headers)["event-id"] == b"outbox-kept"
    with pytest.raises(AssertionError):
        await read_records(settings, topic, 2, timeout_s=2)
    await producer.stop()


async def test_the_outbox_purges_only_rows_sent_before_the_cut_off(settings, database):
    sent_long_ago, sent_now, pending = form("purge-old"), form("purge-new"), form("purge-pending")
    async with database.transaction() as session:
        for event in (sent_long_ago, sent_now, pending):
            await add_event(session, OUTBOX, event, settings.topic_prefix)
        await session.execute(
            text(
                "UPDATE outbox SET sent_at = CASE event_id WHEN 'purge-old' THEN :old "
                "ELSE now() END WHERE event_id IN ('purge-old', 'purge-new')"
            ),
            {"old": datetime(2020, 1, 1, tzinfo=UTC)},
        )
    relay = OutboxRelay(
        settings=settings, database=database, outbox=OUTBOX, producer=EventProducer(settings)
    )
    assert await relay.purge_sent(datetime(2021, 1, 1, tzinfo=UTC)) == 1
    async with database.transaction() as session:
        left = set((await session.execute(select(OUTBOX.c.event_id))).scalars())
    assert left == {"purge-new", "purge-pending"}


async def test_the_relay_delivers_every_committed_row_in_fewer_passes_than_commits(
    settings, database
):
    producer = EventProducer(settings)
    relay = OutboxRelay(
        settings=settings, database=database, outbox=OUTBOX, producer=producer, gather_s=0.05
    )
    running = asyncio.create_task(relay.run())
    await asyncio.sleep(0.3)  # its first pass finds nothing and it waits
    passes_before = relay.passes
    ids = [f"gathered-{i}" for i in range(20)]
    for event_id in ids:  # twenty small commits in quick succession, each waking it
        async with database.transaction() as session:
            await add_event(session, OUTBOX, form(event_id), settings.topic_prefix)
        relay.wake()
    records = await read_records(settings, topics.FORMS.name(settings.topic_prefix), 20)
    relay.stop()
    await running
    await producer.stop()
    assert sorted(dict(r.headers)["event-id"].decode() for r in records) == sorted(ids)
    assert relay.passes - passes_before < len(ids)


async def test_a_pooled_connection_dropped_while_idle_is_replaced_before_use(infra):
    database = Database(URL, SCHEMA, pool_size=1, ping_after_idle_s=0.1)
    try:
        async with database.transaction() as session:
            first = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # As a Postgres restart would: the server ends the idle pooled connection.
        killer = create_async_engine(URL)
        async with killer.begin() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await killer.dispose()
        await asyncio.sleep(0.2)
        async with database.transaction() as session:
            second = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await database.dispose()


async def test_the_producer_gives_up_within_its_timeout_when_kafka_is_down(infra):
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9", kafka_publish_timeout_s=1.5)
    producer = EventProducer(settings)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match="unreachable"):
        await producer.publish([form("never")])
    assert time.monotonic() - started < 2.0


async def test_a_replayed_dead_letter_is_applied_once_the_handler_is_fixed(settings, database):
    from revops.events.cli import _replay

    await publish(settings, [form("late-fix", "poison")])
    producer = EventProducer(settings)
    await run_until(runner(settings, database, producer), lambda: fully_committed(settings))
    assert "late-fix" not in await applied_rows(database)

    replayed = await _replay(settings, topics.FORMS.name(settings.topic_prefix), 100)
    assert replayed == 1

    async def applied_after_replay():
        assert await applied_rows(database) == {"late-fix": 1}

    async def apply_fixed(session, event):  # the bug fix shipped with the next release
        await session.execute(
            pg_insert(applied).values(event_id=event.id, times=1).on_conflict_do_nothing()
        )

    await run_until(runner(settings, database, producer, handle=apply_fixed), applied_after_replay)
    await producer.stop()


async def test_a_batch_handler_gets_new_events_and_a_failed_batch_falls_back_per_event(
    settings, database
):
    batches: list[list[str]] = []

    async def handle_batch(session, events):
        batches.append([e.id for e in events])
        for event in events:
            await count_and_poison(session, event)  # raises on the poison: batch rolls back

    await publish(settings, [form("b-1"), form("b-2")])
    producer = EventProducer(settings)
    batch_runner = ConsumerRunner(
        settings=settings,
        database=database,
        inbox=INBOX,
        topics=[topics.FORMS],
        handle=count_and_poison,
        handle_batch=handle_batch,
        producer=producer,
    )
    task = asyncio.create_task(batch_runner.run())
    try:
        await eventually(lambda: fully_committed(settings))
        await publish(settings, [form("b-1"), form("b-3"), form("b-bad", "poison")])
        await eventually(lambda: fully_committed(settings))
    finally:
        batch_runner.stop()
        await asyncio.wait_for(task, 20)
    assert await applied_rows(database) == {"b-1": 1, "b-2": 1, "b-3": 1}
    seen = [event_id for batch in batches for event_id in batch]
    assert seen.count("b-1") == 1, "the redelivered b-1 reached the batch handler again"
    [record] = await read_records(settings, topics.FORMS.dlq_name(settings.topic_prefix), 1)
    assert dict(record.headers)["event-id"] == b"b-bad"
    await producer.stop()

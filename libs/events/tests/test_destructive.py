"""`revops reset` and `revops-attribution recompute` against a live consumer group: they
refuse while an instance runs, say what they drop, and ask before dropping it; `reset`
publishes what the outbox holds for Kafka first and refuses to drop what it cannot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from revops.events.cli import app
from revops.events.db import Database
from revops.events.settings import KafkaSettings
from revops.events.testing import database_url_for_tests, fresh_schema, read_events

runner = CliRunner()


async def count_queues(url: str, name: str = "q1") -> int:
    """How many queues of this name: the one the test added (the migrations add others)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            query = text("SELECT count(*) FROM router.queues WHERE name = :name")
            return int((await connection.execute(query, {"name": name})).scalar_one())
    finally:
        await engine.dispose()


async def seeded_router_schema(url: str) -> None:
    from revops.router.main import SPEC

    await fresh_schema(SPEC, url)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO router.queues (name, role, region) VALUES ('q1', 'sdr', 'NA')")
        )
    await engine.dispose()


async def member_of(settings: KafkaSettings, group: str, topic: str) -> AIOKafkaConsumer:
    """A consumer that has joined ``group`` (has partitions): a running instance."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=6000,
    )
    await consumer.start()
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        assert time.monotonic() < deadline, "the consumer never joined its group"
        await consumer.getmany(timeout_ms=200)
    return consumer


@pytest.fixture
async def router_env(kafka_settings: KafkaSettings, monkeypatch) -> AsyncIterator[str]:
    url = database_url_for_tests("router")
    monkeypatch.setenv("ROUTER_DATABASE_URL", url)
    monkeypatch.setenv("TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    await seeded_router_schema(url)
    yield url


async def test_reset_refuses_while_the_service_runs(kafka_settings, router_env):
    prefix = kafka_settings.topic_prefix
    live = await member_of(kafka_settings, f"{prefix}router", f"{prefix}revops.forms")
    try:
        for extra in ([], ["--yes"]):
            result = await asyncio.to_thread(runner.invoke, app, ["reset", "router", *extra])
            assert result.exit_code == 1, result.output
            [line] = result.stderr.strip().splitlines()
            assert line.startswith("error: router is running")
            assert "1 live member(s)" in line
            assert "--force" in line
        assert await count_queues(router_env) == 1  # nothing dropped
    finally:
        await live.stop()


async def test_reset_says_what_it_drops_and_asks(kafka_settings, router_env):
    declined = await asyncio.to_thread(runner.invoke, app, ["reset", "router"], input="n\n")
    assert declined.exit_code == 1
    assert "This drops schema 'router'" in declined.stdout
    assert "queues 7" in declined.stdout  # the six the migrations add, and the test's
    assert "Drop 'router'?" in declined.stdout
    assert declined.stderr.startswith("error: aborted")
    assert await count_queues(router_env) == 1

    confirmed = await asyncio.to_thread(runner.invoke, app, ["reset", "router"], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "schema emptied, consumer reset" in confirmed.stdout
    assert await count_queues(router_env) == 0


async def test_reset_with_yes_does_not_ask(kafka_settings, router_env):
    # No input at all: a question would abort.
    result = await asyncio.to_thread(runner.invoke, app, ["reset", "router", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Drop 'router'?" not in result.stdout
    assert await count_queues(router_env) == 0


async def test_recompute_refuses_while_attribution_runs(kafka_settings, monkeypatch):
    from revops.attribution.main import cli

    prefix = kafka_settings.topic_prefix
    monkeypatch.setenv("DATABASE_URL", database_url_for_tests("attribution"))
    monkeypatch.setenv("TOPIC_PREFIX", prefix)
    live = await member_of(kafka_settings, f"{prefix}attribution", f"{prefix}revops.signups")
    try:
        result = await asyncio.to_thread(runner.invoke, cli, ["recompute", "--yes"])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: attribution is running")
        assert "recomputed" not in result.stdout
    finally:
        await live.stop()


# --- the outbox: rows the stopped service's relay never delivered --------------------------
# No relay runs in these tests, so the rows stay pending until the command acts.


async def queue_in_outbox(url: str, events: int, write_backs: int = 0) -> list[str]:
    """Rows as the router's handlers queue them: ``events`` decisions for Kafka (the
    forms topic of this module's prefix) and ``write_backs`` HubSpot owner calls."""
    from revops.events.outbox import add_event, add_message
    from revops.events.testing import form_submitted
    from revops.router.main import SPEC

    settings = KafkaSettings()  # the prefix router_env set
    database = Database(url, "router")
    ids = []
    try:
        async with database.transaction() as session:
            for n in range(events):
                event = form_submitted(f"lead{n}@example.com", datetime.now(UTC))
                await add_event(session, SPEC.outbox, event, settings.topic_prefix)
                ids.append(event.id)
            for n in range(write_backs):
                await add_message(
                    session,
                    SPEC.outbox,
                    event_id=f"wb-{n}",
                    destination="hubspot_owner",
                    key=f"lead{n}",
                    value=b"{}",
                )
    finally:
        await database.dispose()
    return ids


async def test_reset_publishes_the_outbox_events_before_dropping(kafka_settings, router_env):
    ids = await queue_in_outbox(router_env, events=3)
    result = await asyncio.to_thread(runner.invoke, app, ["reset", "router", "--yes"])
    assert result.exit_code == 0, result.output
    assert "published 3 event(s) from router's outbox" in result.stdout
    assert await count_queues(router_env) == 0  # then dropped
    topic = f"{kafka_settings.topic_prefix}revops.forms"
    on_kafka = [e.id for e in await read_events(kafka_settings, topic, 3)]
    assert sorted(on_kafka) == sorted(ids)  # each once, with its id: the rebuild sees it


async def test_reset_refuses_when_the_outbox_events_cannot_be_published_in_time(
    kafka_settings, router_env
):
    await queue_in_outbox(router_env, events=2)
    result = await asyncio.to_thread(
        runner.invoke, app, ["reset", "router", "--yes", "--outbox-wait", "0"]
    )
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert "router's outbox still holds 2 undelivered row(s)" in line
    assert "2 event(s) not yet on Kafka (decisions the rebuild would not see)" in line
    assert "nothing was dropped" in line
    assert "with a longer --outbox-wait" in line
    assert await count_queues(router_env) == 1
    assert await pending_rows(router_env) == {"kafka": 2}


async def test_reset_refuses_when_kafka_does_not_take_the_outbox_events(
    kafka_settings, router_env, monkeypatch
):
    """A topic the broker does not have (it creates none by itself) stands for a Kafka
    that does not answer: the publish fails within its timeout and nothing is dropped."""
    from revops.events.outbox import add_event
    from revops.events.testing import form_submitted
    from revops.router.main import SPEC

    monkeypatch.setenv("KAFKA_PUBLISH_TIMEOUT_S", "0.5")
    database = Database(router_env, "router")
    try:
        async with database.transaction() as session:
            event = form_submitted("lost@example.com", datetime.now(UTC))
            await add_event(session, SPEC.outbox, event, f"{kafka_settings.topic_prefix}nowhere-")
    finally:
        await database.dispose()
    result = await asyncio.to_thread(runner.invoke, app, ["reset", "router", "--yes"])
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert "1 event(s) not yet on Kafka (decisions the rebuild would not see; Kafka did " in line
    assert "run the reset again once Kafka answers" in line
    assert await count_queues(router_env) == 1
    assert await pending_rows(router_env) == {"kafka": 1}


async def test_reset_refuses_while_crm_calls_wait_in_the_outbox(kafka_settings, router_env):
    ids = await queue_in_outbox(router_env, events=1, write_backs=2)
    result = await asyncio.to_thread(runner.invoke, app, ["reset", "router", "--yes"])
    assert result.exit_code == 1, result.output
    # The event went to Kafka all the same; the calls only the service can make stay.
    assert "published 1 event(s)" in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert "still holds 2 undelivered row(s): 2 call(s) to hubspot_owner not yet made" in line
    assert "start router until its outbox has none pending" in line
    assert "--force" in line
    assert await count_queues(router_env) == 1
    assert await pending_rows(router_env) == {"hubspot_owner": 2}
    topic = f"{kafka_settings.topic_prefix}revops.forms"
    assert ids[0] in [e.id for e in await read_events(kafka_settings, topic, 1)]


async def test_reset_with_force_says_which_outbox_rows_it_drops(kafka_settings, router_env):
    await queue_in_outbox(router_env, events=1, write_backs=1)
    result = await asyncio.to_thread(
        runner.invoke, app, ["reset", "router", "--yes", "--force", "--outbox-wait", "0"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        "warning: dropping 1 event(s) not yet on Kafka (decisions the rebuild would not "
        "see), 1 call(s) to hubspot_owner not yet made with router's outbox; going on "
        "because of --force"
    )
    assert await count_queues(router_env) == 0
    assert await pending_rows(router_env) == {}


async def pending_rows(url: str) -> dict[str, int]:
    from revops.events.destructive import undelivered
    from revops.router.main import SPEC

    database = Database(url, "router")
    try:
        return await undelivered(database, SPEC.outbox)
    finally:
        await database.dispose()

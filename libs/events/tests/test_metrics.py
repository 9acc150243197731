"""Business figures: counted once the transaction that stored them commits (never for a
rolled-back batch or savepoint), and the database's figures (outbox rows pending and
failed, a service's own gauges) read at each scrape, back to zero once gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from revops.events import metrics
from revops.events.db import Database, service_metadata
from revops.events.outbox import add_message
from revops.events.service import GaugeReader, ServiceRuntime, ServiceSpec
from revops.events.settings import ServiceSettings
from revops.events.testing import database_url_for_tests

SCHEMA = "metrics_test"
metadata = service_metadata(SCHEMA)
OUTBOX = metadata.tables[f"{SCHEMA}.outbox"]
URL = database_url_for_tests("revops")  # the admin role may create this test-only schema
SPEC = ServiceSpec(SCHEMA, metadata, Path("."), [])


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
    engine = create_async_engine(URL)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    await engine.dispose()


@pytest.fixture
def facts() -> Counter:
    return Counter("facts_total", "facts stored", registry=CollectorRegistry())


def counted(counter: Counter) -> float:
    return counter._value.get()  # type: ignore[no-any-return]


async def store_one(session: AsyncSession, facts: Counter) -> None:
    await session.execute(text("SELECT 1"))
    metrics.count_on_commit(session, facts.inc)


async def test_a_fact_counts_once_its_transaction_commits_not_before(database, facts):
    async with database.transaction() as session:
        await store_one(session, facts)
        await store_one(session, facts)
        assert counted(facts) == 0  # not yet: it could still roll back
    assert counted(facts) == 2


async def test_a_rolled_back_transaction_counts_nothing(database, facts):
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await store_one(session, facts)
            raise RuntimeError("the batch failed")
    assert counted(facts) == 0
    # The same session object's next transaction starts with nothing pending.
    async with database.transaction() as session:
        await store_one(session, facts)
    assert counted(facts) == 1


async def test_a_savepoint_rolled_back_counts_nothing_its_released_neighbours_count(
    database, facts
):
    """The runner's fallback: each event in a savepoint, a failing one rolled back."""
    async with database.transaction() as session:
        for fails in (False, True, False, True, False):
            try:
                async with session.begin_nested():
                    await store_one(session, facts)
                    if fails:
                        raise ValueError("poison event")
            except ValueError:
                pass
        assert counted(facts) == 0
    assert counted(facts) == 3


async def test_a_released_savepoint_falls_with_its_rolled_back_transaction(database, facts):
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            async with session.begin_nested():
                await store_one(session, facts)
            async with session.begin_nested(), session.begin_nested():
                await store_one(session, facts)
            raise RuntimeError("Postgres went away before the commit")
    assert counted(facts) == 0


async def test_a_fact_stored_through_the_synchronous_view_counts_at_the_commit(database, facts):
    def store(session: Session) -> None:
        session.execute(text("SELECT 1"))
        metrics.count_on_commit(session, facts.inc)

    async with database.transaction() as session:
        await session.run_sync(store)
        assert counted(facts) == 0
    assert counted(facts) == 1


def runtime(database_url: str, *gauges: GaugeReader) -> ServiceRuntime:
    settings = ServiceSettings(service_name=SCHEMA, database_url=database_url)
    return ServiceRuntime(SPEC, settings, _nothing, gauges=gauges)


async def _nothing(session: object, event: object) -> None:
    return None


def figure(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": SCHEMA, **labels})


async def test_outbox_rows_pending_and_failed_are_read_at_scrape_and_return_to_zero(database):
    async with database.transaction() as session:
        await session.execute(text("TRUNCATE outbox"))
        for n in range(3):
            await add_message(
                session, OUTBOX, event_id=f"crm-{n}", destination="crm_owner", key="k", value=b"{}"
            )
        await add_message(
            session, OUTBOX, event_id="crm-x", destination="crm_owner", key="k", value=b"{}"
        )
        await session.execute(
            update(OUTBOX).where(OUTBOX.c.event_id == "crm-x").values(failed_at=datetime.now(UTC))
        )
    seen: list[AsyncSession] = []

    async def own_gauge(session: AsyncSession) -> None:
        seen.append(session)

    rt = runtime(URL, own_gauge)
    try:
        await rt.read_gauges()
        assert figure("revops_outbox_pending", destination="crm_owner") == 3
        assert figure("revops_outbox_failed", destination="crm_owner") == 1
        assert len(seen) == 1  # the service's own reader ran, in the same transaction

        async with database.transaction() as session:
            await session.execute(update(OUTBOX).values(sent_at=datetime.now(UTC)))
        await rt.read_gauges()
        assert figure("revops_outbox_pending", destination="crm_owner") == 0
        assert figure("revops_outbox_failed", destination="crm_owner") == 0
    finally:
        await rt.database.dispose()


async def test_a_database_that_does_not_answer_costs_the_figures_not_the_scrape(database):
    # Nothing listens on port 9: the read fails, the scrape goes on without it.
    rt = runtime(URL.replace("127.0.0.1:5432", "127.0.0.1:9"))
    failures = figure("revops_metrics_read_failures_total") or 0
    try:
        await rt.read_gauges()
    finally:
        await rt.database.dispose()
    assert figure("revops_metrics_read_failures_total") == failures + 1

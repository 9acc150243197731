"""The operators' command line, against the real broker."""

from __future__ import annotations

from typer.testing import CliRunner

from revops.events import admin
from revops.events.cli import app
from revops.events.testing import unique_prefix

runner = CliRunner()


def test_help_lists_the_operator_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("topics", "lag", "dlq", "outbox", "reset", "migrate", "revision"):
        assert command in result.output


def test_topics_ensure_creates_every_topic_once_and_lag_reads_them(infra, monkeypatch):
    import asyncio

    prefix = unique_prefix()
    monkeypatch.setenv("TOPIC_PREFIX", prefix)
    try:
        first = runner.invoke(app, ["topics", "ensure"])
        assert first.exit_code == 0, first.output
        # Every topic and its dead-letter topic: 9 topics with the roster.
        assert "18 created" in first.output
        again = runner.invoke(app, ["topics", "ensure"])
        assert "0 created" in again.output
        lag = runner.invoke(app, ["lag", "router"])
        assert lag.exit_code == 0, lag.output
        assert f"{prefix}revops.forms" in lag.output
        assert f"{prefix}revops.roster" in lag.output  # the router reads the roster too
    finally:
        asyncio.run(admin.delete_topics_with_prefix("127.0.0.1:9092", prefix))


def test_topics_ensure_asks_the_broker_for_the_configured_replicas(infra, monkeypatch):
    """TOPIC_REPLICATION_FACTOR reaches the broker: the single local broker refuses three
    replicas, and no topic is left half-made."""
    import asyncio

    prefix = unique_prefix()
    monkeypatch.setenv("TOPIC_PREFIX", prefix)
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "3")
    try:
        result = runner.invoke(app, ["topics", "ensure"])
        assert result.exit_code != 0
        assert "replication factor of 3 cannot be reached" in result.output, result.output
        assert not [
            t for t in asyncio.run(admin.list_topics("127.0.0.1:9092")) if t.startswith(prefix)
        ]
    finally:
        asyncio.run(admin.delete_topics_with_prefix("127.0.0.1:9092", prefix))


def test_outbox_retry_puts_failed_rows_back_in_the_queue(infra, monkeypatch):
    import asyncio

    from sqlalchemy import select, text

    from revops.events.db import Database
    from revops.events.testing import database_url_for_tests, fresh_schema
    from revops.router.main import SPEC

    url = database_url_for_tests("router")
    monkeypatch.setenv("ROUTER_DATABASE_URL", url)
    outbox = SPEC.outbox

    async def two_failed_one_pending() -> None:
        await fresh_schema(SPEC, url)
        database = Database(url, "router")
        async with database.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO outbox (event_id, destination, topic, key, value, attempts, "
                    "failed_at, last_error) VALUES "
                    "('hs', 'hubspot_owner', '', 'l', '', 1, now(), 'no owner id'), "
                    "('sf', 'salesforce_owner', '', 'l', '', 10, now(), 'answered 400'), "
                    "('ok', 'hubspot_owner', '', 'l', '', 0, NULL, NULL)"
                )
            )
        await database.dispose()

    async def rows() -> dict[str, tuple[int, bool]]:
        database = Database(url, "router")
        async with database.transaction() as session:
            found = await session.execute(select(outbox))
            out = {r.event_id: (r.attempts, r.failed_at is not None) for r in found}
        await database.dispose()
        return out

    asyncio.run(two_failed_one_pending())
    result = runner.invoke(app, ["outbox", "retry", "router", "--destination", "hubspot_owner"])
    assert result.exit_code == 0, result.output
    assert "1 failed outbox row(s) queued again" in result.output
    assert asyncio.run(rows()) == {"hs": (0, False), "sf": (10, True), "ok": (0, False)}
    result = runner.invoke(app, ["outbox", "retry", "router"])
    assert "1 failed outbox row(s) queued again" in result.output
    assert asyncio.run(rows())["sf"] == (0, False)

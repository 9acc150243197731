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
    for command in ("topics", "lag", "dlq", "reset", "migrate", "revision"):
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


def test_reset_refuses_without_confirmation():
    result = runner.invoke(app, ["reset", "router"])
    assert result.exit_code != 0
    assert "--yes" in result.output

"""Every command the README shows can be typed without fear: ``--help`` and ``--version``
touch nothing, errors are one line with a hint, and an exposed service refuses the public
development secrets.

Kafka and Postgres are "unreachable" here: their addresses point at listeners of this test
that accept a connection and never answer, and count every connection made to them. A
command that so much as tried to reach either shows in the count.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.main import get_command

from revops.events.version import project_version

BIN = Path(sys.executable).parent


def console_scripts() -> dict[str, str]:
    """Every console script the workspace installs, by name: its ``module:attribute``."""
    return {
        ep.name: ep.value
        for ep in entry_points(group="console_scripts")
        if ep.dist is not None and ep.dist.name.startswith("revops-")
    }


class SilentListener:
    """A TCP port that accepts connections and never answers, counting them."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self.connections = 0
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self._open:
            connection.close()


@pytest.fixture(scope="module")
def unreachable() -> Iterator[tuple[SilentListener, SilentListener, dict[str, str]]]:
    kafka, postgres = SilentListener(), SilentListener()
    database = f"postgresql+asyncpg://revops:revops@127.0.0.1:{postgres.port}/revops"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka.port}",
        "DATABASE_URL": database,
        **{f"{s.upper()}_DATABASE_URL": database for s in ("router", "attribution", "renewals")},
        "HTTP_PORT": str(free_port()),
    }
    yield kafka, postgres, env
    kafka.close()
    postgres.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_workspace_installs_the_five_commands():
    assert {"revops", "revops-ingest", "revops-router", "revops-attribution"} <= set(
        console_scripts()
    )
    assert "revops-renewals" in console_scripts()


@pytest.mark.processes
@pytest.mark.parametrize("script", sorted(console_scripts()))
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_touch_nothing(script, flag, unreachable):
    kafka, postgres, env = unreachable
    before = (kafka.connections, postgres.connections)
    try:
        result = subprocess.run(
            [str(BIN / script), flag], env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"`{script} {flag}` did not exit within 30 s: an entry point must parse its "
            "arguments before it starts anything (revops.events.operator.service_cli does)"
        )
    assert result.returncode == 0, result.stderr
    if flag == "--help":
        assert result.stdout.startswith("Usage:"), result.stdout
    else:
        assert result.stdout.strip() == f"{script} {project_version()}"
    assert (kafka.connections, postgres.connections) == before, "it reached for Kafka/Postgres"
    # Nothing listens on the port it would have served on.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(env["HTTP_PORT"]))):
        pass


def _commands(group: object, path: list[str]) -> Iterator[list[str]]:
    yield path
    if isinstance(group, TyperGroup):
        for name, command in group.commands.items():
            yield from _commands(command, [*path, name])


def _subcommands(app: typer.Typer) -> list[str]:
    group = get_command(app)
    assert isinstance(group, TyperGroup), group
    return list(group.commands)


def _app_of(value: str) -> typer.Typer | None:
    """The Typer app behind a console script (a service's ``cli`` beside its ``main``); None
    for a script built otherwise (its top-level --help is still swept above)."""
    import importlib

    module, _, attribute = value.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        return target
    # A `main()` function: the services' `cli` beside it.
    cli = getattr(importlib.import_module(module), "cli", None)
    return cli if isinstance(cli, typer.Typer) else None


def test_every_subcommand_s_help_touches_nothing(unreachable, monkeypatch):
    from typer.testing import CliRunner

    kafka, postgres, env = unreachable
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ROUTER_DATABASE_URL"):
        monkeypatch.setenv(key, env[key])
    before = (kafka.connections, postgres.connections)
    runner = CliRunner()
    seen = []
    for script, value in sorted(console_scripts().items()):
        app = _app_of(value)
        if app is None:
            continue
        for path in _commands(get_command(app), []):
            result = runner.invoke(app, [*path, "--help"], prog_name=script)
            assert result.exit_code == 0, (script, path, result.output)
            assert "Usage:" in result.output
            seen.append(" ".join([script, *path]))
    assert (kafka.connections, postgres.connections) == before
    for expected in (
        "revops reset",
        "revops-router serve",
        "revops-router migrate",
        "revops-router check-config",
        "revops-ingest check-config",
        "revops-attribution recompute",
        "revops-renewals migrate",
    ):
        assert expected in seen


def test_services_have_serve_migrate_and_check_config():
    for script in ("revops-router", "revops-attribution", "revops-renewals"):
        app = _app_of(console_scripts()[script])
        assert app is not None, script
        commands = set(_subcommands(app))
        assert {"serve", "migrate", "check-config"} <= commands, script
    ingest_app = _app_of(console_scripts()["revops-ingest"])
    assert ingest_app is not None
    ingest = set(_subcommands(ingest_app))
    assert {"serve", "check-config"} <= ingest


@pytest.mark.processes
def test_an_error_is_one_line_with_a_hint(unreachable):
    _, _, env = unreachable
    closed = free_port()
    result = subprocess.run(
        [str(BIN / "revops-attribution"), "show", "--url", f"http://127.0.0.1:{closed}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ConnectError")
    assert "(hint: " in lines[0]


@pytest.mark.processes
def test_debug_shows_the_traceback(unreachable):
    _, _, env = unreachable
    closed = free_port()
    result = subprocess.run(
        [str(BIN / "revops-attribution"), "--debug", "show", "--url", f"http://127.0.0.1:{closed}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr


@pytest.mark.processes
def test_a_usage_error_is_one_line_naming_the_help(unreachable):
    _, _, env = unreachable
    result = subprocess.run(
        [str(BIN / "revops"), "reset"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Missing argument 'service'. (hint: see `revops reset --help`)"
    ]


@pytest.mark.processes
@pytest.mark.parametrize(
    ("script", "named"),
    [
        ("revops-router", "API_TOKEN, API_READ_TOKEN"),
        ("revops-ingest", "HUBSPOT_CLIENT_SECRETS, SALESFORCE_EVENTS_SECRETS"),
    ],
)
def test_an_exposed_service_refuses_the_development_secrets(script, named, unreachable):
    kafka, postgres, env = unreachable
    before = (kafka.connections, postgres.connections)
    exposed = {**env, "HTTP_HOST": "0.0.0.0"}
    result = subprocess.run(
        [str(BIN / script), "serve"], env=exposed, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "HTTP_HOST=0.0.0.0 is not a loopback address" in line
    assert named in line
    assert (kafka.connections, postgres.connections) == before
    # The old invocation, without a subcommand, is `serve` and is guarded the same way.
    production = {**env, "REVOPS_ENV": "production"}
    again = subprocess.run(
        [str(BIN / script)], env=production, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert "REVOPS_ENV=production" in again.stderr
    assert named in again.stderr


def test_check_config_says_what_is_wrong_without_connecting(unreachable):
    from typer.testing import CliRunner

    from revops.router.main import cli

    kafka, postgres, env = unreachable
    before = (kafka.connections, postgres.connections)
    runner = CliRunner()
    local = runner.invoke(cli, ["check-config"], env=env)
    assert local.exit_code == 0, local.output
    assert "API_TOKEN=********" in local.output
    assert "dev-admin-token" not in local.output
    assert "ok for this machine (loopback)" in local.output
    exposed = runner.invoke(cli, ["check-config"], env={**env, "HTTP_HOST": "0.0.0.0"})
    assert exposed.exit_code == 1
    assert "API_TOKEN, API_READ_TOKEN, DATABASE_URL" in exposed.output
    own = runner.invoke(
        cli,
        ["check-config"],
        env={
            **env,
            "HTTP_HOST": "0.0.0.0",
            "API_TOKEN": "s3cret-a",
            "API_READ_TOKEN": "s3cret-b",
            "DATABASE_URL": env["DATABASE_URL"].replace("revops:revops@", "revops:s3cret-c@"),
        },
    )
    assert own.exit_code == 0, own.output
    assert "ok for production" in own.output
    bad = runner.invoke(cli, ["check-config"], env={**env, "HTTP_PORT": "eighty"})
    assert bad.exit_code == 1
    assert bad.output.count("\n") == 1
    assert "HTTP_PORT" in bad.output
    assert (kafka.connections, postgres.connections) == before

"""What every command line of the project shares: arguments parsed before anything else
runs, ``--version``, errors as one line with a hint (``--debug`` for the traceback), and
the services' own subcommands (``serve``, ``migrate``, ``check-config``)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

# Typer carries its own copy of Click (typer._click): its exceptions are those classes.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer._click.utils import _detect_program_name
from typer.core import TyperGroup

from revops.events import migrations
from revops.events.destructive import OutboxNotEmpty, ServiceRunning
from revops.events.production import UnsafeSettings, check_production, exposure
from revops.events.service import ServiceSpec
from revops.events.settings import ServiceSettings
from revops.events.version import project_version

DEBUG_FLAG = "--debug"


def _debug_requested(args: list[str]) -> bool:
    return DEBUG_FLAG in args or os.environ.get("REVOPS_DEBUG", "") not in ("", "0", "false")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(exc: BaseException) -> tuple[str, str]:
    """What went wrong in one line, and what to try."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'value'}: {e['msg']}"
            for e in exc.errors()
        )
        return f"invalid setting: {problems}", "fix the environment variable named"
    if isinstance(exc, UnsafeSettings):
        return str(exc), "see the README's Configuration section"
    if isinstance(exc, ServiceRunning):
        return str(exc), "`revops lag` names the groups; `make down` stops the local services"
    if isinstance(exc, OutboxNotEmpty):
        return str(exc), "the README's Destructive commands say why"
    text = _one_line(str(exc)) or exc.__class__.__name__
    name = exc.__class__.__name__
    module = exc.__class__.__module__
    if module.startswith("aiokafka") or "Kafka" in name:
        return (
            f"Kafka: {name}: {text}",
            "is the broker at KAFKA_BOOTSTRAP_SERVERS running? (`make infra` starts it)",
        )
    if module.startswith(("asyncpg", "sqlalchemy")) or isinstance(exc, ConnectionError):
        return (
            f"database: {name}: {text}",
            "is Postgres running and DATABASE_URL right? (`make infra` starts it)",
        )
    if module.startswith("httpx"):
        return f"{name}: {text}", "is the service running at that URL, with that token?"
    return f"{name}: {text}", f"run again with {DEBUG_FLAG} for the traceback"


class OperatorGroup(TyperGroup):
    """Every error, a usage error included, is printed as one line on stderr with a hint;
    ``--debug`` (anywhere on the line) or ``REVOPS_DEBUG=1`` lets the traceback through."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = _debug_requested(argv)
        argv = [a for a in argv if a != DEBUG_FLAG]
        prog = prog_name or _detect_program_name()
        try:
            result = super().main(argv, prog, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()  # the help, as asked for by typing nothing
            sys.exit(exc.exit_code)
        except UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else prog
            _fail(exc.format_message(), f"see `{command} --help`", exc.exit_code)
        except ClickException as exc:
            _fail(exc.format_message(), f"see `{prog} --help`", exc.exit_code)
        except typer.Abort:
            _fail("aborted", f"nothing was changed; --yes answers yes, {DEBUG_FLAG} explains", 1)
        except Exception as exc:
            if debug:
                raise
            message, hint = describe_error(exc)
            _fail(message, hint, 1)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _fail(message: str, hint: str, code: int) -> None:
    typer.echo(f"error: {_one_line(message)} (hint: {hint})", err=True)
    sys.exit(code)


def _print_version(name: str) -> Callable[[bool], None]:
    def callback(value: bool) -> None:
        if value:
            typer.echo(f"{name} {project_version()}")
            raise typer.Exit()

    return callback


def operator_app(name: str, help_text: str | None) -> typer.Typer:
    """A command line built the project's way (see ``OperatorGroup``)."""
    epilog = f"Errors are one line; {DEBUG_FLAG} (or REVOPS_DEBUG=1) shows the traceback."
    return typer.Typer(
        name=name,
        help=help_text,
        epilog=epilog,
        cls=OperatorGroup,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def version_option(name: str) -> Any:
    return typer.Option(
        False,
        "--version",
        callback=_print_version(name),
        is_eager=True,
        help="print the version and exit",
    )


# --- the services' command lines ---------------------------------------------------------

S = TypeVar("S", bound=BaseSettings)


def describe_settings(settings: BaseSettings) -> dict[str, Any]:
    """The effective settings, secrets masked, by environment variable name."""
    shown: dict[str, Any] = {}
    for name in sorted(type(settings).model_fields):
        value = getattr(settings, name)
        if isinstance(value, SecretStr) or (
            isinstance(value, list) and value and isinstance(value[0], SecretStr)
        ):
            value = "********"
        shown[name.upper()] = value
    return shown


def service_cli(
    name: str,
    help_text: str | None,
    *,
    settings: Callable[[], S],
    serve: Callable[[S], None],
    spec: ServiceSpec | None = None,
) -> typer.Typer:
    """``revops-<name>`` with ``serve`` (also what runs without a subcommand, as before),
    ``check-config`` and, for a service with a database, ``migrate``."""
    cli = operator_app(f"revops-{name}", f"{help_text or ''}\n\nWithout a command: serve.")

    @cli.callback(invoke_without_command=True)
    def default(
        ctx: typer.Context,
        version: bool = version_option(f"revops-{name}"),
    ) -> None:
        """Without a subcommand: serve."""
        if ctx.invoked_subcommand is None:
            serve(settings())

    @cli.command("serve")
    def serve_command() -> None:
        """Run the service (its API and its background loops) until SIGTERM or Ctrl-C."""
        serve(settings())

    @cli.command("check-config")
    def check_config() -> None:
        """Read the settings from the environment and check them (the production guard
        included) without connecting to anything; print them, secrets masked."""
        loaded = settings()
        check_production(loaded)
        for key, value in describe_settings(loaded).items():
            typer.echo(f"{key}={value}")
        why = exposure(loaded)
        verdict = f"ok for production ({why})" if why else "ok for this machine (loopback)"
        typer.echo(f"revops-{name}: configuration {verdict}")

    if spec is not None:
        schema = spec

        @cli.command("migrate")
        def migrate_command() -> None:
            """Apply the service's database migrations (serve applies them too) and exit."""
            loaded = settings()
            assert isinstance(loaded, ServiceSettings)  # a service with a schema has these
            url = loaded.resolved_database_url()
            asyncio.run(migrations.upgrade(url, schema.name, schema.migrations_dir))
            typer.echo(f"revops-{name}: schema {schema.name} at head")

    return cli

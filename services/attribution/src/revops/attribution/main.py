"""`revops-attribution`: the service (API on :8002 and the consumer, in one process), and
`revops-attribution recompute` to rebuild its schema from the topics (destructive: it
refuses while the service runs and asks first)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from revops.attribution.api import router
from revops.attribution.campaigns_api import router as campaigns_router
from revops.attribution.consumer import make_batch_handler, make_handler
from revops.attribution.models import metadata
from revops.attribution.recompute import recompute
from revops.attribution.settings import AttributionSettings
from revops.attribution.show import show
from revops.events import topics
from revops.events.destructive import Target, announce_and_confirm, refuse_while_running
from revops.events.logs import configure_logging
from revops.events.operator import service_cli
from revops.events.service import ServiceRuntime, ServiceSpec, create_app, serve

SPEC = ServiceSpec(
    name="attribution",
    metadata=metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    topics=[topics.FORMS, topics.SIGNUPS, topics.PEOPLE, topics.OPPORTUNITIES],
)


def build_app(settings: AttributionSettings | None = None) -> FastAPI:
    settings = settings or AttributionSettings()
    runtime = ServiceRuntime(
        spec=SPEC,
        settings=settings,
        handle=make_handler(settings),
        handle_batch=make_batch_handler(settings),
    )
    return create_app(
        title="revops attribution",
        description="Lead source, first touchpoint, opportunity source, campaign influence.",
        settings=settings,
        routers=[router, campaigns_router],
        runtime=runtime,
    )


def serve_attribution(settings: AttributionSettings) -> None:
    serve(build_app(settings), settings, port=settings.http_port)


cli = service_cli(
    "attribution", __doc__, settings=AttributionSettings, serve=serve_attribution, spec=SPEC
)


@cli.command("recompute")
def recompute_command(
    yes: Annotated[bool, typer.Option("--yes", help="do not ask before dropping")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="go on even while instances of the service run")
    ] = False,
) -> None:
    """DESTRUCTIVE: drop the schema and decide everything again from the topics.

    Refuses while any instance of the service runs (its consumer group has live members)
    unless --force; prints the tables and row counts it drops and asks unless --yes.
    Start the service again afterwards (it carries on from where the recompute stopped)."""
    settings = AttributionSettings()
    target = Target(
        service="attribution",
        schema=SPEC.name,
        database_url=settings.resolved_database_url(),
        bootstrap=settings.kafka_bootstrap_servers,
        group=f"{settings.topic_prefix}{settings.service_name}",
        topics=[t.name(settings.topic_prefix) for t in SPEC.topics],
    )
    refuse_while_running(target, force=force)
    announce_and_confirm(target, yes=yes)
    if not yes:
        refuse_while_running(target, force=force)  # it may have started while we asked
    configure_logging(settings.service_name, "WARNING")
    console = Console()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("recomputing attribution", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = asyncio.run(recompute(settings, SPEC, progress=show))
    console.print(
        f"attribution recomputed from {result.events} event(s) in {result.seconds:.1f} s "
        f"({result.events_per_second:,.0f} events/s): {result.people} people, "
        f"{result.opportunities} opportunities, {result.influence_rows} influencing touches"
    )


@cli.command("show")
def show_command(
    email: Annotated[list[str] | None, typer.Option(help="a person to show")] = None,
    opportunity: Annotated[list[str] | None, typer.Option(help="an opportunity id")] = None,
    url: Annotated[str, typer.Option(help="the running service")] = "http://127.0.0.1:8002",
    token: Annotated[str, typer.Option(envvar="API_READ_TOKEN")] = "dev-read-token",
) -> None:
    """Print people's and opportunities' attribution and pipeline by source, readably."""
    show(url, token, email or [], opportunity or [])


def main() -> None:
    cli()

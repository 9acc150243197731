"""``revops``: the operators' command line.

revops topics ensure|list        create / show the topics named in revops.events.topics
revops lag [SERVICE ...]         consumer lag per service
revops dlq replay TOPIC          put dead-lettered events back on their topic
revops outbox retry SERVICE      put the outbox rows that gave up back in the queue
revops reset SERVICE             DESTRUCTIVE: drop a service's schema and re-read its
                                 topics from the start; refuses while the service runs
                                 or its outbox holds CRM calls not yet made (--force),
                                 publishes the events its outbox holds, asks first (--yes)
revops migrate SERVICE           apply the service's Alembic migrations
revops revision SERVICE -m MSG   autogenerate a migration from the service's models
revops backfill salesforce|hubspot  publish what a CRM already holds (with ingest installed)
revops reps sync salesforce|hubspot  the roster from Salesforce Users / HubSpot owners
revops reps import|export FILE.csv   the roster from / to a CSV file
revops asyncapi [-o FILE]        the event catalogue as an AsyncAPI 3.0 document
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from alembic import command
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from revops.events import admin, asyncapi, migrations
from revops.events.db import Database, one_of
from revops.events.destructive import (
    Target,
    announce_and_confirm,
    deliver_outbox_or_refuse,
    refuse_while_running,
)
from revops.events.operator import operator_app, version_option
from revops.events.outbox import requeue_failed
from revops.events.service import ServiceSpec
from revops.events.settings import KafkaSettings
from revops.events.topics import by_base_name

app = operator_app("revops", __doc__)


@app.callback(no_args_is_help=True)
def _revops(version: bool = version_option("revops")) -> None:
    """The operators' command line."""


topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter topics.", no_args_is_help=True)
outbox_app = typer.Typer(help="The services' outboxes.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")
# The backfill is ingest's (its normaliser); present where ingest is installed.
if importlib.util.find_spec("revops.ingest") is not None:
    _crm_commands = importlib.import_module("revops.ingest.backfill.command")
    app.add_typer(_crm_commands.backfill_app, name="backfill")
    app.add_typer(_crm_commands.reps_app, name="reps")
console = Console()

SERVICES = ("router", "attribution", "renewals")


def load_spec(service: str) -> ServiceSpec:
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    spec: ServiceSpec = importlib.import_module(f"revops.{service}.main").SPEC
    return spec


def database_url(service: str) -> str:
    return os.environ.get(
        f"{service.upper()}_DATABASE_URL",
        os.environ.get(
            "DATABASE_URL", f"postgresql+asyncpg://{service}:{service}@127.0.0.1:5432/revops"
        ),
    )


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create every topic (and its .dlq) that does not exist yet."""
    settings = KafkaSettings()
    created = asyncio.run(
        admin.ensure_topics(
            settings.kafka_bootstrap_servers,
            settings.topic_prefix,
            replication_factor=settings.topic_replication_factor,
        )
    )
    console.print(f"topics ready ({len(created)} created: {', '.join(created) or 'none'})")


@topics_app.command("list")
def topics_list() -> None:
    """List the broker's topics."""
    settings = KafkaSettings()
    for name in asyncio.run(admin.list_topics(settings.kafka_bootstrap_servers)):
        console.print(name)


@app.command()
def lag(services: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Show each service's consumer lag per topic."""
    settings = KafkaSettings()
    table = Table("service", "committed", "end", "lag")
    # Topic names are what an operator copies into the next command: never truncated.
    table.add_column("topic", no_wrap=True, min_width=36)
    for service in services or list(SERVICES):
        spec = load_spec(service)
        names = [t.name(settings.topic_prefix) for t in spec.topics]
        rows = asyncio.run(
            admin.group_lag(
                settings.kafka_bootstrap_servers, f"{settings.topic_prefix}{service}", names
            )
        )
        by_topic: dict[str, list[admin.PartitionLag]] = {}
        for row in rows:
            by_topic.setdefault(row.topic, []).append(row)
        for topic, parts in sorted(by_topic.items()):
            committed = sum(p.committed or 0 for p in parts)
            end = sum(p.end for p in parts)
            table.add_row(service, str(committed), str(end), str(sum(p.lag for p in parts)), topic)
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="base topic name, e.g. revops.forms")],
    max_records: Annotated[int, typer.Option("--max")] = 1_000_000,
) -> None:
    """Publish the dead letters of TOPIC back onto TOPIC (consumers dedupe by event id)."""
    settings = KafkaSettings()
    spec = by_base_name(topic)
    replayed = asyncio.run(_replay(settings, spec.name(settings.topic_prefix), max_records))
    console.print(f"replayed {replayed} event(s) from {spec.dlq_name(settings.topic_prefix)}")


async def _replay(settings: KafkaSettings, topic: str, max_records: int) -> int:
    dlq = f"{topic}.dlq"
    group = f"{settings.topic_prefix}revops-dlq-replay"
    lags = await admin.group_lag(settings.kafka_bootstrap_servers, group, [dlq])
    total = min(max_records, sum(p.lag for p in lags))
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True
    )
    await consumer.start()
    await producer.start()
    done = 0
    try:
        with _progress() as progress:
            bar = progress.add_task(f"replaying {dlq}", total=total)
            while done < total:
                batches = await consumer.getmany(
                    timeout_ms=1000, max_records=min(500, total - done)
                )
                if not batches:
                    break
                for records in batches.values():
                    for record in records:
                        headers = [(k, v) for k, v in record.headers if not k.startswith("dlq-")]
                        await producer.send_and_wait(
                            topic, record.value, key=record.key, headers=headers
                        )
                        done += 1
                await consumer.commit()
                progress.update(bar, completed=done)
    finally:
        await producer.stop()
        await consumer.stop()
    return done


@outbox_app.command("retry")
def outbox_retry(
    service: str,
    destination: Annotated[
        list[str] | None, typer.Option(help="only rows for this destination (repeatable)")
    ] = None,
    event_id: Annotated[list[str] | None, typer.Option(help="only this row (repeatable)")] = None,
) -> None:
    """Put SERVICE's failed outbox rows back in the queue, due now with fresh attempts
    (once what made them fail is fixed); the running relay sends them at its next poll."""
    spec = load_spec(service)
    where = []
    if destination:
        where.append(one_of(spec.outbox.c.destination, destination))
    if event_id:
        where.append(one_of(spec.outbox.c.event_id, event_id))
    count = asyncio.run(_requeue(database_url(service), spec, where))
    console.print(f"{service}: {count} failed outbox row(s) queued again")


async def _requeue(url: str, spec: ServiceSpec, where: list[Any]) -> int:
    database = Database(url, spec.name, pool_size=1)
    try:
        async with database.transaction() as session:
            return await requeue_failed(session, spec.outbox, *where)
    finally:
        await database.dispose()


@app.command()
def reset(
    service: str,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask before dropping")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="go on even while instances of SERVICE run or its outbox holds rows not "
            "yet delivered (says what it drops)",
        ),
    ] = False,
    follow: Annotated[bool, typer.Option(help="show the rebuild's progress until done")] = False,
    outbox_wait: Annotated[
        float,
        typer.Option(min=0, help="seconds to spend publishing the outbox's events at most"),
    ] = 60.0,
) -> None:
    """DESTRUCTIVE: drop SERVICE's schema and make it re-read its topics from the start.

    Refuses while any instance of SERVICE runs (its consumer group has live members)
    unless --force. Decisions still in the outbox are not on Kafka yet, and a rebuild reads
    only Kafka: the command publishes them first (as the stopped service's relay would),
    and refuses, dropping nothing, when some are left or CRM calls are still to be made
    (unless --force). Prints the tables and row counts it drops and asks unless --yes.
    Start the service again afterwards and it rebuilds its schema from what the topics
    still hold (--follow shows the progress)."""
    settings = KafkaSettings()
    spec = load_spec(service)
    url = database_url(service)
    target = Target(
        service=service,
        schema=spec.name,
        database_url=url,
        bootstrap=settings.kafka_bootstrap_servers,
        group=f"{settings.topic_prefix}{service}",
        topics=[t.name(settings.topic_prefix) for t in spec.topics],
    )
    refuse_while_running(target, force=force)
    _empty_outbox(target, spec, force=force, wait_s=outbox_wait)
    announce_and_confirm(target, yes=yes)
    if not yes:  # it may have started, and queued rows, while we asked
        refuse_while_running(target, force=force)
        _empty_outbox(target, spec, force=force, wait_s=outbox_wait)
    asyncio.run(migrations.drop_all(url, spec.name))
    asyncio.run(migrations.upgrade(url, spec.name, spec.migrations_dir))
    names = [t.name(settings.topic_prefix) for t in spec.topics]
    total = asyncio.run(
        admin.reset_group_to_start(
            settings.kafka_bootstrap_servers, f"{settings.topic_prefix}{service}", names
        )
    )
    console.print(f"{service}: schema emptied, consumer reset; {total} event(s) to re-read")
    if follow:
        follow_rebuild(service, total)


def _empty_outbox(target: Target, spec: ServiceSpec, *, force: bool, wait_s: float) -> None:
    """Publish the outbox's events with a progress bar, or refuse (see ``reset``)."""
    with _progress() as progress:
        bar = progress.add_task(f"publishing {target.service}'s outbox", total=None)

        def show(published: int, total: int) -> None:
            progress.update(bar, completed=published, total=total)

        deliver_outbox_or_refuse(target, spec.outbox, force=force, wait_s=wait_s, progress=show)


def follow_rebuild(service: str, total: int) -> None:
    """Show a progress bar while the running service catches up, then the final count."""
    settings = KafkaSettings()
    spec = load_spec(service)
    names = [t.name(settings.topic_prefix) for t in spec.topics]
    group = f"{settings.topic_prefix}{service}"
    with _progress() as progress:
        bar = progress.add_task(f"rebuilding {service}", total=total)
        while True:
            rows = asyncio.run(admin.group_lag(settings.kafka_bootstrap_servers, group, names))
            remaining = sum(r.lag for r in rows)
            progress.update(bar, completed=max(0, total - remaining))
            if remaining == 0:
                break
            time.sleep(1)
    console.print(f"{service}: rebuilt from {total} event(s)")


@app.command()
def migrate(service: str) -> None:
    """Apply SERVICE's migrations."""
    spec = load_spec(service)
    asyncio.run(migrations.upgrade(database_url(service), spec.name, spec.migrations_dir))
    console.print(f"{service}: schema at head")


@app.command()
def revision(service: str, message: Annotated[str, typer.Option("-m")]) -> None:
    """Autogenerate a migration for SERVICE from its models (against its current schema)."""
    spec = load_spec(service)
    config = migrations.alembic_config(database_url(service), spec.name, spec.migrations_dir)
    command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    app()


@app.command("asyncapi")
def asyncapi_document(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write it here (docs/asyncapi.json)")
    ] = None,
) -> None:
    """Print the event catalogue and its topics as an AsyncAPI 3.0 document."""
    text = asyncapi.render()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")

"""The guard in front of every command that empties a schema (``revops reset``,
``revops-attribution recompute``): refuse while the service runs, deliver or refuse what
its outbox still holds, say what will be dropped, and ask before dropping it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import typer
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events import admin
from revops.events.db import Database, connect_args
from revops.events.outbox import KAFKA, OutboxRelay
from revops.events.producer import EventProducer, KafkaUnavailable
from revops.events.settings import ServiceSettings

Progress = Callable[[int, int], None]  # (published, to publish)


class ServiceRunning(Exception):
    """The service's consumer group has live members: it is running somewhere."""


class OutboxNotEmpty(Exception):
    """The service's outbox holds rows not yet delivered: dropping the schema loses them."""


@dataclass(frozen=True)
class Target:
    """What a destructive command works on."""

    service: str
    schema: str
    database_url: str
    bootstrap: str
    group: str
    topics: list[str]

    @property
    def where(self) -> str:
        url = make_url(self.database_url)
        return f"database {url.database} on {url.host}:{url.port or 5432}"


async def schema_rows(database_url: str, schema: str) -> dict[str, int]:
    """Every table of the schema with its exact row count."""
    engine = create_async_engine(database_url, connect_args=connect_args(database_url))
    try:
        async with engine.connect() as connection:
            names = (
                await connection.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = :schema AND table_type = 'BASE TABLE' "
                        "ORDER BY table_name"
                    ),
                    {"schema": schema},
                )
            ).scalars()
            counts = {}
            for name in list(names):
                quoted = f'"{schema}"."{name}"'
                counts[name] = int(
                    (await connection.execute(text(f"SELECT count(*) FROM {quoted}"))).scalar_one()
                )
            return counts
    finally:
        await engine.dispose()


def refuse_while_running(target: Target, *, force: bool) -> None:
    """Raise ``ServiceRunning`` when the service's consumer group has live members."""
    members = asyncio.run(admin.live_members(target.bootstrap, target.group))
    if not members:
        return
    if force:
        typer.echo(
            f"warning: {len(members)} live member(s) in consumer group {target.group!r} "
            f"({', '.join(map(str, members))}); going on because of --force",
            err=True,
        )
        return
    raise ServiceRunning(
        f"{target.service} is running: consumer group {target.group!r} has "
        f"{len(members)} live member(s) ({', '.join(map(str, members))}); stop every "
        "instance first (or pass --force to drop the schema under them)"
    )


def announce_and_confirm(target: Target, *, yes: bool) -> None:
    """Print what will be dropped; unless ``yes``, ask (and abort on anything but yes)."""
    rows = asyncio.run(schema_rows(target.database_url, target.schema))
    total = sum(rows.values())
    typer.echo(
        f"This drops schema {target.schema!r} in {target.where}: "
        f"{len(rows)} table(s), {total} row(s)"
        + (
            f" ({', '.join(f'{name} {count}' for name, count in rows.items() if count)})"
            if total
            else ""
        )
    )
    typer.echo(
        f"and moves consumer group {target.group!r} back to the start of "
        f"{', '.join(target.topics)}; the schema is rebuilt from what the topics still hold "
        "(events past their retention are gone for good)."
    )
    if not yes:
        typer.confirm(f"Drop {target.schema!r}?", abort=True)


async def undelivered(database: Database, outbox: Table) -> dict[str, int]:
    """The outbox's rows neither delivered nor given up, per destination (none before the
    schema's first migration)."""
    async with database.transaction() as session:
        name = f'"{outbox.schema}"."{outbox.name}"'
        if (await session.execute(text("SELECT to_regclass(:n)"), {"n": name})).scalar() is None:
            return {}
        rows = await session.execute(
            select(outbox.c.destination, func.count())
            .where(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
            .group_by(outbox.c.destination)
        )
        return {str(destination): int(count) for destination, count in rows}


@dataclass(frozen=True)
class OutboxLeft:
    """What the outbox still holds after the command published what it could."""

    rows: dict[str, int]
    published: int
    kafka_error: str | None = None

    def describe(self) -> str:
        parts = []
        if events := self.rows.get(KAFKA, 0):
            parts.append(
                f"{events} event(s) not yet on Kafka (decisions the rebuild would not see"
                + (f"; Kafka did not take them: {self.kafka_error})" if self.kafka_error else ")")
            )
        for destination, count in sorted(self.rows.items()):
            if destination != KAFKA:
                parts.append(f"{count} call(s) to {destination} not yet made")
        return ", ".join(parts)


async def publish_pending(
    target: Target, outbox: Table, *, wait_s: float, progress: Progress
) -> OutboxLeft:
    """Publish the outbox's Kafka rows as the service's relay would, for at most about
    ``wait_s``: the service is stopped, so nobody else will, and a rebuild reads only what
    is on Kafka. Rows for a CRM are left: only the service holds their senders."""
    settings = ServiceSettings(
        service_name=target.service, kafka_bootstrap_servers=target.bootstrap
    )
    database = Database(target.database_url, target.schema, pool_size=1)
    producer = EventProducer(settings, client_id=f"revops-reset-{target.service}")
    relay = OutboxRelay(settings=settings, database=database, outbox=outbox, producer=producer)
    try:
        total = (await undelivered(database, outbox)).get(KAFKA, 0)
        published, error = 0, None
        deadline = time.monotonic() + wait_s
        while published < total and time.monotonic() < deadline:
            try:
                batch = await relay.publish_once()  # each bounded by the publish timeout
            except KafkaUnavailable as exc:
                error = str(exc)
                break
            if batch == 0:  # another relay took the rest
                break
            published += batch
            progress(published, total)
        return OutboxLeft(await undelivered(database, outbox), published, error)
    finally:
        await producer.stop()
        await database.dispose()


def deliver_outbox_or_refuse(
    target: Target, outbox: Table, *, force: bool, wait_s: float, progress: Progress
) -> int:
    """Publish what the outbox holds for Kafka; raise ``OutboxNotEmpty`` naming what is
    still undelivered (unless ``force``, which says what it drops). Returns how many
    events it published."""
    left = asyncio.run(publish_pending(target, outbox, wait_s=wait_s, progress=progress))
    if left.published:
        typer.echo(f"published {left.published} event(s) from {target.service}'s outbox")
    if not left.rows:
        return left.published
    if force:
        typer.echo(
            f"warning: dropping {left.describe()} with {target.service}'s outbox; going on "
            "because of --force",
            err=True,
        )
        return left.published
    raise OutboxNotEmpty(
        f"{target.service}'s outbox still holds {sum(left.rows.values())} undelivered "
        f"row(s): {left.describe()}; nothing was dropped. " + _what_to_do(target.service, left)
    )


def _what_to_do(service: str, left: OutboxLeft) -> str:
    steps = []
    if left.rows.get(KAFKA):
        again = "once Kafka answers" if left.kafka_error else "with a longer --outbox-wait"
        steps.append(f"run the reset again {again}")
    if set(left.rows) - {KAFKA}:
        # The command cannot make these calls: the senders and credentials are the service's.
        steps.append(
            f"start {service} until its outbox has none pending (the revops_outbox_pending "
            "metric), then stop it and reset again"
        )
    return "; ".join(steps) + "; or pass --force to drop them"

"""The guard in front of every command that empties a schema (``revops reset``,
``revops-attribution recompute``): refuse while the service runs, say what will be
dropped, and ask before dropping it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import typer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events import admin
from revops.events.db import connect_args


class ServiceRunning(Exception):
    """The service's consumer group has live members: it is running somewhere."""


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

"""Alembic, per service: each service's migrations live in its package, its version table
in its own schema, and concurrent instances starting at once migrate one at a time."""

from __future__ import annotations

import asyncio
import threading
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events.db import connect_args


def alembic_config(database_url: str, schema: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


# Alembic keeps the running migration's context in module globals, so two services
# migrating at once in one process (the end-to-end tests run all four) would share it.
_ALEMBIC = threading.Lock()


async def upgrade(database_url: str, schema: str, migrations_dir: Path) -> None:
    """Migrate to head. Alembic's env runs its own event loop, so it runs in a thread."""
    config = alembic_config(database_url, schema, migrations_dir)

    def run() -> None:
        with _ALEMBIC:
            command.upgrade(config, "head")

    await asyncio.to_thread(run)


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate compares only the service's own tables: alembic_version lives in the
    same schema but in no MetaData, and would otherwise be dropped by every revision."""
    return not (type_ == "table" and name == "alembic_version")


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    schema = config.attributes.get("schema") or target_metadata.schema
    url = config.get_main_option("sqlalchemy.url")
    assert url and schema, "alembic needs sqlalchemy.url and the service's schema"

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=False,
            compare_type=True,
            include_object=_ours,
        )
        with context.begin_transaction():
            # Several instances may start at once: one migrates, the others wait and
            # then find nothing to do.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(schema.encode())}
            )
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, connect_args=connect_args(url))
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())


async def drop_all(database_url: str, schema: str) -> None:
    """Drop every table, sequence and type in the service's schema (the schema stays: the
    service role owns it but may not create schemas)."""
    engine = create_async_engine(database_url, connect_args=connect_args(database_url))
    async with engine.begin() as conn:
        for kind, query in (
            ("TABLE", "SELECT tablename FROM pg_tables WHERE schemaname = :s"),
            ("SEQUENCE", "SELECT sequencename FROM pg_sequences WHERE schemaname = :s"),
            (
                "TYPE",
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = :s AND t.typtype = 'e'",
            ),
        ):
            names = (await conn.execute(text(query), {"s": schema})).scalars().all()
            for name in names:
                await conn.execute(text(f'DROP {kind} IF EXISTS "{schema}"."{name}" CASCADE'))
    await engine.dispose()

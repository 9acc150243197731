"""Each service's migrations build exactly the schema its models describe: a model changed
without a migration (or the reverse) shows as a difference here, as `revops revision`
would autogenerate it. Also: both paths of the migration chain, up and down, run."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from revops.attribution.main import SPEC as ATTRIBUTION
from revops.events import migrations
from revops.events.db import connect_args
from revops.events.service import ServiceSpec
from revops.events.testing import database_url_for_tests, fresh_schema
from revops.renewals.main import SPEC as RENEWALS
from revops.router.main import SPEC as ROUTER

SPECS = {spec.name: spec for spec in (ROUTER, ATTRIBUTION, RENEWALS)}


def differences(connection: Connection, spec: ServiceSpec) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={
            "version_table_schema": spec.name,
            "include_schemas": False,
            "compare_type": True,
            "include_object": migrations._ours,
            "target_metadata": spec.metadata,
        },
    )
    return list(compare_metadata(context, spec.metadata))


@pytest.mark.parametrize("name", sorted(SPECS))
async def test_the_migrations_build_what_the_models_describe(infra, name):
    spec = SPECS[name]
    url = database_url_for_tests(name)
    await fresh_schema(spec, url)
    engine = create_async_engine(url, connect_args=connect_args(url, spec.name))
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(differences, spec)
    finally:
        await engine.dispose()
    assert found == [], f"{name}: models and migrations differ: {found}"


@pytest.mark.parametrize("name", sorted(SPECS))
async def test_every_migration_can_be_undone_and_done_again(infra, name):
    spec = SPECS[name]
    url = database_url_for_tests(name)
    await fresh_schema(spec, url)
    config = migrations.alembic_config(url, spec.name, spec.migrations_dir)
    await asyncio.to_thread(command.downgrade, config, "base")
    await migrations.upgrade(url, spec.name, spec.migrations_dir)

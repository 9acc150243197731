"""The reporting schema for BI tools: the `reporting` role reads every documented view,
and nothing else: no service's table, no change to a view, nothing new in the schema."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from revops.attribution.main import SPEC as ATTRIBUTION
from revops.events.testing import database_url_for_tests, fresh_schema
from revops.renewals.main import SPEC as RENEWALS
from revops.router.main import SPEC as ROUTER

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "REPORTING.md"
SERVICES = (ROUTER, ATTRIBUTION, RENEWALS)
HOW_TO_GET_THE_ROLE = (
    "the `reporting` role is missing: run deploy/local/postgres-init.sql as a superuser "
    "(`make infra` does)"
)


def dsn(role: str) -> str:
    return database_url_for_tests(role).replace("postgresql+asyncpg://", "postgresql://")


async def connect(role: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn(role))


@pytest.fixture(scope="module")
async def reporting(infra: None) -> AsyncIterator[asyncpg.Connection]:
    admin = await connect("revops")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'reporting'"):
            pytest.fail(HOW_TO_GET_THE_ROLE, pytrace=False)
        # What postgres-init.sql does in the databases it makes, for a test database made
        # elsewhere (the admin role owns it, so it may).
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(
            f"""
            CREATE SCHEMA IF NOT EXISTS reporting AUTHORIZATION revops;
            GRANT USAGE, CREATE ON SCHEMA reporting TO router, attribution, renewals;
            GRANT USAGE ON SCHEMA reporting TO reporting;
            GRANT CONNECT ON DATABASE "{database}" TO reporting;
            """
        )
    finally:
        await admin.close()
    for spec in SERVICES:
        await fresh_schema(spec, database_url_for_tests(spec.name))
    await _store_a_little_of_everything()
    connection = await connect("reporting")
    yield connection
    await connection.close()


async def _store_a_little_of_everything() -> None:
    at = datetime(2026, 11, 27, 2, tzinfo=UTC)
    router = await connect("router")
    await router.execute(
        """INSERT INTO router.leads (id, email, match, rule, reason, queue, priority,
               created_at, routed_at, source_event_id, state, employees, segment,
               policy_version, territory, company, match_score)
           VALUES ('L1', 'ann@acme.example', 'company_name', 'round_robin',
                   'inbound-AMER turn 4', 'inbound-AMER', 'normal', $1, $1, 'ev-1', 'CA',
                   250, 'mid-market', 3, 'west-coast', 'Acme Corp', 92.5)""",
        at,
    )
    await router.close()
    renewals = await connect("renewals")
    contents = {
        "total": {
            "open_by_category": {
                "Commit": {"count": 2, "amount": "1500.00"},
                "Pipeline": {"count": 5, "amount": "9000.5"},
            }
        }
    }
    await renewals.execute(
        """INSERT INTO renewals.snapshots (id, scheduled_at, as_of, taken_at, seconds,
               opportunities, contents) VALUES ('S1', $1, $1, $1, 0.5, 7, $2::jsonb)""",
        at,
        json.dumps(contents),
    )
    await renewals.close()


def documented_views() -> set[str]:
    return set(re.findall(r"^### `reporting\.([a-z_]+)`", DOC.read_text(), re.MULTILINE))


async def views_in_the_schema(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch("SELECT viewname FROM pg_views WHERE schemaname = 'reporting'")
    return {row["viewname"] for row in rows}


async def test_every_view_is_documented_and_every_documented_view_exists(reporting):
    assert len(documented_views()) >= 9
    assert await views_in_the_schema(reporting) == documented_views()


async def test_the_role_reads_every_view_with_the_services_data(reporting):
    for view in sorted(documented_views()):
        await reporting.fetch(f"SELECT * FROM reporting.{view} LIMIT 1")
    lead = await reporting.fetchrow("SELECT * FROM reporting.leads WHERE lead_id = 'L1'")
    assert (lead["routing_rule"], lead["queue"]) == ("round_robin", "inbound-AMER")
    routed_by_policy = ("state", "employees", "segment", "policy_version", "territory")
    assert [lead[c] for c in routed_by_policy] == ["CA", 250, "mid-market", 3, "west-coast"]
    assert (lead["account_match"], lead["company"], lead["company_match_score"]) == (
        "company_name",
        "Acme Corp",
        92.5,
    )
    totals = await reporting.fetch(
        "SELECT forecast_category, opportunities, amount FROM reporting.forecast_snapshots"
        " WHERE snapshot_id = 'S1' ORDER BY forecast_category"
    )
    assert [tuple(r) for r in totals] == [
        ("Commit", 2, Decimal("1500.00")),
        ("Pipeline", 5, Decimal("9000.50")),
    ]


async def test_the_role_reads_no_table_of_any_service(reporting):
    admin = await connect("revops")
    tables = await admin.fetch(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[])",
        [spec.name for spec in SERVICES],
    )
    await admin.close()
    assert len(tables) > 20
    for row in tables:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reporting.fetch(f'SELECT 1 FROM {row["schemaname"]}."{row["tablename"]}"')


async def test_the_role_changes_nothing_and_creates_nothing(reporting):
    for statement in (
        "DELETE FROM reporting.leads",
        "UPDATE reporting.leads SET queue = 'x'",
        "INSERT INTO reporting.renewals (renewal_id) VALUES ('R1')",
        "CREATE VIEW reporting.mine AS SELECT 1 AS one",
        "CREATE TABLE reporting.mine (one integer)",
        "CREATE TABLE public.mine (one integer)",
        "CREATE SCHEMA mine",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reporting.execute(statement)
    lead = await reporting.fetchval("SELECT count(*) FROM reporting.leads")
    assert lead == 1

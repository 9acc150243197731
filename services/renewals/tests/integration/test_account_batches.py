"""A batch's account changes, applied together, store what the same changes applied one
at a time in the order they happened store; applying the batch again changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from revops.events.catalogue import AccountChangedEvent
from revops.events.db import Database
from revops.events.testing import fresh_schema
from revops.renewals import models as m
from revops.renewals.accounts import on_accounts_changed
from revops.renewals.main import SPEC
from revops.renewals.settings import RenewalsSettings

from .conftest import renewals_settings
from .renewals_events import account

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def database(kafka_settings: Any) -> AsyncIterator[tuple[Database, RenewalsSettings]]:
    settings = renewals_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    database = Database(settings.resolved_database_url(), "renewals")
    yield database, settings
    await database.dispose()


def changes(tag: str) -> list[AccountChangedEvent]:
    """Two accounts, in the order they happened: one climbs quartz -> ruby -> diamond, the
    other starts sapphire, drops to quartz and climbs back (an onboarding each time)."""
    a, b = f"001A-{tag}", f"001B-{tag}"

    def at(days: int) -> datetime:
        return T0 + timedelta(days=days)

    return [
        account(f"{tag}-a1", at(0), a, users=100),
        account(f"{tag}-b1", at(1), b, users=1200),
        account(f"{tag}-a2", at(10), a, users=600),
        account(f"{tag}-b2", at(12), b, users=100),
        account(f"{tag}-b3", at(15), b, plan="Enterprise"),  # size only in part
        account(f"{tag}-a3", at(20), a, plan="Ultimate", users=2001),
        account(f"{tag}-b4", at(25), b, users=1500, iacv="90000"),
        account(f"{tag}-x", at(26), b),  # says nothing about a size
    ]


async def stored(database: Database, tag: str) -> dict[str, Any]:
    """Everything the changes of ``tag`` left, with the tag taken out of the ids."""

    def plain(row: Any) -> tuple[Any, ...]:
        return tuple(str(v).replace(tag, "T") if isinstance(v, str) else v for v in row)

    async with database.transaction() as session:
        out: dict[str, Any] = {}
        for name, table, order in (
            ("accounts", m.accounts, m.accounts.c.account_id),
            ("history", m.tier_history, m.tier_history.c.at),
            ("onboardings", m.onboardings, m.onboardings.c.opened_at),
        ):
            # An onboarding's id is a hash of its event's id, which carries the tag.
            columns = [c for c in table.c if c.name != "id"]
            rows = await session.execute(
                select(*columns).where(table.c.account_id.like(f"%-{tag}")).order_by(order)
            )
            out[name] = [plain(r) for r in rows]
        return out


async def test_a_batch_stores_what_one_at_a_time_stores(
    database: tuple[Database, RenewalsSettings],
) -> None:
    db, settings = database
    one, batched = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    for event in changes(one):
        async with db.transaction() as session:
            await on_accounts_changed(session, [event], settings)
    # In one batch, late ones first: the fold puts each where it happened.
    async with db.transaction() as session:
        await on_accounts_changed(session, changes(batched)[::-1], settings)

    expected = await stored(db, one)
    assert await stored(db, batched) == expected
    tiers = {row[0]: row[4] for row in expected["accounts"]}
    assert tiers == {"001A-T": "diamond", "001B-T": "sapphire"}
    assert len(expected["history"]) == 6
    assert [o[2:4] for o in expected["onboardings"]] == [
        (None, "sapphire"),
        ("quartz", "ruby"),
        ("quartz", "sapphire"),
    ]

    async with db.transaction() as session:
        await on_accounts_changed(session, changes(batched), settings)
    assert await stored(db, batched) == expected

"""A rebuild re-decides nothing: conversions that took turns of the AE rotation (published
across partitions, applied by two instances) and account transfers come back exactly as
the first run decided them, with the leads, turns, rotations and moves they left."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events import admin
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import router_settings
from .rep_helpers import create_reps
from .router_events import (
    T0,
    account,
    converted,
    form,
    routing_events,
)
from .router_instances import Instances

pytestmark = pytest.mark.infra

ACCOUNTS = 12
LEADS_PER_ACCOUNT = 3
REPS = [
    {"id": "S1", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "S2", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "A1", "role": "AE", "region": "AMER", "certified": True, "paired_sdr_id": "S1"},
    {"id": "A2", "role": "AE", "region": "AMER", "certified": True, "paired_sdr_id": "S2"},
    {"id": "A3", "role": "AE", "region": "AMER", "certified": True, "weight": 2},
]


def email(i: int, j: int) -> str:
    return f"buyer{j}@replay-co{i:02d}.example"


async def snapshot(settings: RouterSettings) -> dict[str, Any]:
    """What a rebuild must give back: every row of these tables (a lead without its
    routed_at, the time it was written)."""
    engine = create_async_engine(settings.resolved_database_url())
    lead_columns = [c for c in m.leads.c if c.name != "routed_at"]
    async with engine.connect() as conn:
        out = {
            "leads": sorted(map(tuple, await conn.execute(select(*lead_columns)))),
            "conversions": sorted(map(tuple, await conn.execute(select(m.conversions)))),
            "queue_turns": sorted(map(tuple, await conn.execute(select(m.queue_turns)))),
            "lead_moves": sorted(map(tuple, await conn.execute(select(m.lead_moves)))),
            "queues": sorted(
                (r.name, r.cursor, repr(r.rotation)) for r in await conn.execute(select(m.queues))
            ),
        }
    await engine.dispose()
    return out


async def count(settings: RouterSettings, table: Any, *where: Any) -> int:
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        n = await conn.scalar(select(func.count()).select_from(table).where(*where))
    await engine.dispose()
    return int(n or 0)


async def until(settings: RouterSettings, expected: int, table: Any, *where: Any) -> None:
    async def reached() -> None:
        assert await count(settings, table, *where) == expected

    await eventually(reached, timeout_s=60, interval_s=0.2)


async def test_a_rebuild_gives_back_conversions_and_transfers_as_decided(
    kafka_settings: KafkaSettings,
):
    settings = router_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    day = T0 + timedelta(days=30)
    accounts = [f"001R{i:02d}" for i in range(ACCOUNTS)]
    leads = ACCOUNTS * LEADS_PER_ACCOUNT
    async with Instances(settings, 2) as client:
        await create_reps(client, REPS)
        await publish(
            kafka_settings,
            [
                account(a, f"Replay {i}", [f"replay-co{i:02d}.example"], day, owner="A1")
                for i, a in enumerate(accounts)
            ],
        )
        await until(settings, ACCOUNTS, m.accounts, m.accounts.c.owner_id == "A1")
        await publish(
            kafka_settings,
            [
                form(email(i, j), day + timedelta(minutes=i * 10 + j))
                for i in range(ACCOUNTS)
                for j in range(LEADS_PER_ACCOUNT)
            ],
        )
        await until(settings, leads, m.leads)
        # Half the accounts move to A2 (S1 hands their open leads to S2) ...
        moved = accounts[: ACCOUNTS // 2]
        await publish(
            kafka_settings,
            [
                account(a, f"Replay {accounts.index(a)}", [], day + timedelta(hours=1), owner="A2")
                for a in moved
            ],
        )
        await until(settings, len(moved) * LEADS_PER_ACCOUNT, m.lead_moves)
        # ... the first lead of every account converts, each taking a turn of the AE
        # rotation (no AE touched the accounts), one account per key across partitions ...
        await publish(
            kafka_settings,
            [
                converted(
                    f"00QR{i:02d}",
                    email(i, 0),
                    a,
                    f"006R{i:02d}",
                    day + timedelta(hours=2, minutes=i),
                )
                for i, a in enumerate(accounts)
            ],
        )
        await until(settings, ACCOUNTS, m.conversions)
        # ... and the other half moves to A2 after that: the converted leads stay.
        await publish(
            kafka_settings,
            [
                account(a, f"Replay {accounts.index(a)}", [], day + timedelta(hours=3), owner="A2")
                for a in accounts[ACCOUNTS // 2 :]
            ],
        )
        moves = len(moved) * LEADS_PER_ACCOUNT + (ACCOUNTS - len(moved)) * (LEADS_PER_ACCOUNT - 1)
        await until(settings, moves, m.lead_moves)

        async def journaled() -> None:
            kinds = [e.type for e in await routing_events(kafka_settings)]
            assert kinds.count("lead.ae_assigned") == ACCOUNTS
            assert kinds.count("account.transferred") == ACCOUNTS
            assert kinds.count("lead.routed") == leads

        await eventually(journaled, timeout_s=60, interval_s=0.5)

    first = await snapshot(settings)
    turns = [t for t in first["queue_turns"] if t[0] == "ae-AMER"]
    assert len(turns) == ACCOUNTS  # every conversion took a turn
    assert {c[3] for c in first["conversions"]} == {"A1", "A2", "A3"}
    assert {c[4] for c in first["conversions"]} == {"round_robin"}
    # SAO credit: the SDR the account's leads were moved from keeps it for 14 days.
    credited = {c[1]: c[6] for c in first["conversions"]}
    assert {credited[a] for a in moved} == {"S1"}

    # Rebuild: empty the schema, rewind the group, start again.
    await fresh_schema(SPEC, settings.resolved_database_url())
    group = f"{settings.topic_prefix}{settings.service_name}"
    await admin.reset_group_to_start(
        settings.kafka_bootstrap_servers,
        group,
        [t.name(settings.topic_prefix) for t in SPEC.topics],
    )
    async with Instances(settings, 2):

        async def rebuilt() -> None:
            assert await snapshot(settings) == first

        await eventually(rebuilt, timeout_s=120, interval_s=0.5)

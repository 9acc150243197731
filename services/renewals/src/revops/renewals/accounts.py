"""Account changes: the gemstone tier, its history, and onboardings when it moves up.

Accounts change rarely, so each event is applied on its own: its fields are stored as
sent, and the account's size is folded from all its changes in the order they happened,
so a late event lands where it belongs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import AccountChangedEvent, derived_event_id
from revops.renewals import models as m
from revops.renewals.domain.tiers import AccountSize, Tier, opens_onboarding, tier_of
from revops.renewals.settings import RenewalsSettings

_ACCOUNT_COLUMNS = ("users", "plan", "iacv", "tier", "tier_since", "last_at")


async def on_account_changed(
    session: AsyncSession, event: AccountChangedEvent, settings: RenewalsSettings
) -> None:
    p = event.payload
    if p.users is None and p.plan is None and p.iacv is None:
        return  # nothing about its size: the tier cannot change
    await session.execute(
        pg_insert(m.account_changes)
        .values(
            event_id=event.id,
            account_id=p.account_id,
            at=event.occurred_at,
            users=p.users,
            plan=p.plan,
            iacv=p.iacv,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    c = m.account_changes
    changes = (
        await session.execute(
            select(c).where(c.c.account_id == p.account_id).order_by(c.c.at, c.c.event_id)
        )
    ).all()
    await _retier(session, p.account_id, changes, settings)


async def _retier(
    session: AsyncSession, account_id: str, changes: Sequence[Any], settings: RenewalsSettings
) -> None:
    policy = settings.tier_policy()
    size = AccountSize()
    tier: Tier | None = None
    tier_since: datetime | None = None
    moves: list[dict[str, Any]] = []
    opened: list[dict[str, Any]] = []
    for change in changes:
        size = AccountSize(
            users=change.users if change.users is not None else size.users,
            plan=change.plan if change.plan is not None else size.plan,
            iacv=Decimal(change.iacv) if change.iacv is not None else size.iacv,
        )
        new_tier = tier_of(size, policy)
        if new_tier == tier:
            continue
        moves.append(
            {
                "account_id": account_id,
                "at": change.at,
                "tier_from": tier.value if tier else None,
                "tier_to": new_tier.value if new_tier else None,
            }
        )
        if opens_onboarding(tier, new_tier, policy) and new_tier is not None:
            opened.append(
                {
                    "id": derived_event_id("onboarding", account_id, change.event_id),
                    "account_id": account_id,
                    "opened_at": change.at,
                    "tier_from": tier.value if tier else None,
                    "tier_to": new_tier.value,
                }
            )
        tier, tier_since = new_tier, change.at
    last = changes[-1]
    # The history is derived: written again whole, so a late change rewrites it right.
    await session.execute(delete(m.tier_history).where(m.tier_history.c.account_id == account_id))
    if moves:
        await session.execute(pg_insert(m.tier_history), moves)
    if opened:
        await session.execute(
            pg_insert(m.onboardings).on_conflict_do_nothing(index_elements=["id"]), opened
        )
    upsert = pg_insert(m.accounts).values(
        account_id=account_id,
        users=size.users,
        plan=size.plan,
        iacv=size.iacv,
        tier=tier.value if tier else None,
        tier_since=tier_since,
        last_at=last.at,
    )
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=["account_id"],
            set_={
                k: upsert.excluded[k]
                for k in ("users", "plan", "iacv", "tier", "tier_since", "last_at")
            },
        )
    )

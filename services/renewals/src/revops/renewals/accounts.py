"""Account changes: the gemstone tier, its history, and onboardings when it moves up.

A batch's changes are stored as sent, then each account's size is folded once from all
its changes in the order they happened, so a late event lands where it belongs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import AccountChangedEvent, derived_event_id
from revops.events.db import one_of
from revops.renewals import models as m
from revops.renewals.domain.tiers import AccountSize, Tier, TierPolicy, opens_onboarding, tier_of
from revops.renewals.settings import RenewalsSettings

_ACCOUNT_COLUMNS = ("users", "plan", "iacv", "tier", "tier_since", "last_at")


async def on_accounts_changed(
    session: AsyncSession, events: Sequence[AccountChangedEvent], settings: RenewalsSettings
) -> None:
    """A batch's account changes in a few statements, whatever their number: the changes
    stored, then each account folded once from all its changes."""
    sized = [e for e in events if _size_in(e).known]
    if not sized:
        return  # nothing about a size: no tier can change
    await session.execute(
        pg_insert(m.account_changes).on_conflict_do_nothing(index_elements=["event_id"]),
        [
            {
                "event_id": e.id,
                "account_id": e.payload.account_id,
                "at": e.occurred_at,
                "users": e.payload.users,
                "plan": e.payload.plan,
                "iacv": e.payload.iacv,
            }
            for e in sized
        ],
    )
    account_ids = sorted({e.payload.account_id for e in sized})
    c = m.account_changes
    changes_of: dict[str, list[Any]] = {}
    for change in await session.execute(
        select(c).where(one_of(c.c.account_id, account_ids)).order_by(c.c.at, c.c.event_id)
    ):
        changes_of.setdefault(change.account_id, []).append(change)
    policy = settings.tier_policy()
    folds = [_fold(a, changes_of[a], policy) for a in account_ids]
    await _store(session, account_ids, folds)


def _size_in(event: AccountChangedEvent) -> AccountSize:
    p = event.payload
    return AccountSize(users=p.users, plan=p.plan, iacv=p.iacv)


@dataclass
class _Fold:
    account: dict[str, Any]  # the accounts row
    moves: list[dict[str, Any]]  # tier_history rows
    opened: list[dict[str, Any]]  # onboardings rows


def _fold(account_id: str, changes: Sequence[Any], policy: TierPolicy) -> _Fold:
    """The account's size, tier and tier moves from all its changes, oldest first."""
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
    account = {
        "account_id": account_id,
        "users": size.users,
        "plan": size.plan,
        "iacv": size.iacv,
        "tier": tier.value if tier else None,
        "tier_since": tier_since,
        "last_at": changes[-1].at,
    }
    return _Fold(account, moves, opened)


async def _store(session: AsyncSession, account_ids: Sequence[str], folds: Sequence[_Fold]) -> None:
    # The history is derived: written again whole, so a late change rewrites it right.
    history = m.tier_history
    await session.execute(delete(history).where(one_of(history.c.account_id, account_ids)))
    moves = [move for f in folds for move in f.moves]
    if moves:
        await session.execute(pg_insert(history), moves)
    opened = [o for f in folds for o in f.opened]
    if opened:
        await session.execute(
            pg_insert(m.onboardings).on_conflict_do_nothing(index_elements=["id"]), opened
        )
    upsert = pg_insert(m.accounts)
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=["account_id"],
            set_={k: upsert.excluded[k] for k in _ACCOUNT_COLUMNS},
        ),
        [f.account for f in folds],
    )

"""Account changes: merged field by field, an owner change a transfer of the open
leads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    AccountChangedEvent,
    Envelope,
)
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import CLOSED_LEAD_STATUSES, RouterContext
from revops.router.domain.matching import (
    normalise_domain,
)
from revops.router.domain.merge import merge_fields, stamp, stamps_of
from revops.router.domain.reps import REGIONS, Rep
from revops.router.domain.transfers import transfer_account
from revops.router.journal import add_events, notification
from revops.router.store import load_reps


@dataclass
class _Transfer:
    """An owner change that may move leads (``transfer``), as the account was before it."""

    account_id: str
    label: str
    previous_owner: str | None
    previous_sdr: str | None
    new_owner: str
    at: datetime


async def on_accounts_changed(
    session: AsyncSession, ctx: RouterContext, events: Sequence[AccountChangedEvent]
) -> None:
    """A run of account changes: the accounts loaded once, each change merged field by
    field in memory (``domain.merge``: the newest change of each field wins, whatever
    the arrival order; an owner change that wins is a transfer), then the accounts, their
    domains, the moved leads and the notifications written."""
    ids = sorted({e.payload.account_id for e in events if e.payload.change != "deleted"})
    if not ids:
        return
    accounts: dict[str, dict[str, Any]] = {
        row.id: dict(row._mapping)
        for row in await session.execute(select(m.accounts).where(one_of(m.accounts.c.id, ids)))
    }
    stamps = {a: stamps_of(row["field_times"]) for a, row in accounts.items()}
    reps = {r.id: r for r in await load_reps(session)}
    domains: dict[str, list[str]] = {}
    transfers: list[_Transfer] = []
    for event in events:
        p = event.payload
        if p.change == "deleted":
            continue
        created = p.account_id not in accounts
        row = accounts.setdefault(
            p.account_id, {**dict.fromkeys(c.name for c in m.accounts.c), "id": p.account_id}
        )
        fields = stamps.setdefault(p.account_id, {})
        before = (row["owner_id"], row["sdr_id"], row["name"] or row["id"])
        at = stamp(event.occurred_at, event.id)
        taken = merge_fields(row, fields, _account_fields(ctx, p), at)
        named = [*(p.domains or []), *([p.website] if p.website else [])]
        clean = sorted({d for d in (normalise_domain(x) for x in named) if d}) if named else None
        if merge_fields({}, fields, {"domains": clean}, at):
            domains[p.account_id] = clean or []
        if "owner_id" in taken and created:
            owner = reps.get(row["owner_id"])
            row["sdr_id"] = owner.paired_sdr_id if owner is not None else None
        elif "owner_id" in taken and row["owner_id"] != before[0]:
            previous_owner, previous_sdr, label = before
            outcome = transfer_account(
                label, previous_owner, row["owner_id"], reps, [], event.occurred_at, previous_sdr
            )
            row["sdr_id"] = outcome.new_sdr_id
            if outcome.notify:
                transfers.append(
                    _Transfer(
                        p.account_id,
                        label,
                        previous_owner,
                        previous_sdr,
                        row["owner_id"],
                        event.occurred_at,
                    )
                )
        latest = row["updated_at"]
        row["updated_at"] = event.occurred_at if latest is None else max(latest, event.occurred_at)
        row["field_times"] = {name: list(s) for name, s in sorted(fields.items())}
    touched = sorted({e.payload.account_id for e in events if e.payload.change != "deleted"})
    await _store_accounts(session, [accounts[a] for a in touched], domains)
    if transfers:
        await _transfer_leads(session, ctx, transfers, reps)


def _account_fields(ctx: RouterContext, p: Any) -> dict[str, Any]:
    """The account fields a change carries (None: not carried)."""
    region = (
        p.region.upper() if p.region and p.region.upper() in REGIONS else None
    ) or ctx.region_map.region_of(p.country)
    return {"name": p.name, "country": p.country, "region": region, "owner_id": p.owner_id}


async def _store_accounts(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], domains: Mapping[str, list[str]]
) -> None:
    if rows:
        stmt = pg_insert(m.accounts)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={c.name: stmt.excluded[c.name] for c in m.accounts.c if c.name != "id"},
            ),
            list(rows),
        )
    if domains:
        await session.execute(
            delete(m.account_domains).where(one_of(m.account_domains.c.account_id, sorted(domains)))
        )
        pairs = [{"domain": d, "account_id": a} for a, names in domains.items() for d in names]
        if pairs:
            await session.execute(pg_insert(m.account_domains).on_conflict_do_nothing(), pairs)


async def _transfer_leads(
    session: AsyncSession,
    ctx: RouterContext,
    transfers: Sequence[_Transfer],
    reps: Mapping[str, Rep],
) -> None:
    """``transfer`` for every owner change of the run: the open leads move to the new
    SDR (the last move wins), each move is recorded, both SDRs are told."""
    open_leads: dict[str, list[str]] = {}
    for lead_id, account_id in await session.execute(
        select(m.leads.c.id, m.leads.c.account_id).where(
            one_of(m.leads.c.account_id, sorted({t.account_id for t in transfers})),
            m.leads.c.converted_at.is_(None),
            or_(
                m.leads.c.status.is_(None),
                func.lower(m.leads.c.status).not_in(CLOSED_LEAD_STATUSES),
            ),
        )
    ):
        open_leads.setdefault(str(account_id), []).append(str(lead_id))
    owners: dict[str, str] = {}
    moves: list[dict[str, Any]] = []
    notifications: list[Envelope] = []
    for t in transfers:
        outcome = transfer_account(
            t.label,
            t.previous_owner,
            t.new_owner,
            reps,
            open_leads.get(t.account_id, []),
            t.at,
            t.previous_sdr,
        )
        for move in outcome.moves:
            owners[move.lead_id] = move.to_sdr_id
            moves.append(
                {
                    "lead_id": move.lead_id,
                    "transferred_at": move.transferred_at,
                    "account_id": t.account_id,
                    "from_sdr_id": move.from_sdr_id,
                    "to_sdr_id": move.to_sdr_id,
                }
            )
        if outcome.notify:
            notifications.append(
                notification(
                    "account_transfer", outcome.notify, outcome.message, t.account_id, t.at
                )
            )
    if owners:
        await session.execute(
            sa.update(m.leads)
            .where(m.leads.c.id == sa.bindparam("moved_id"))
            .values(owner_id=sa.bindparam("moved_to"), owner_role="SDR"),
            [{"moved_id": lead, "moved_to": sdr} for lead, sdr in owners.items()],
        )
        await session.execute(pg_insert(m.lead_moves).on_conflict_do_nothing(), moves)
    await add_events(session, ctx, notifications)

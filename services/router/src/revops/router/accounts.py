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

from revops.events import bulk
from revops.events.catalogue import (
    AccountChangedEvent,
    AccountDomainsSetEvent,
    AccountTransferred,
    Envelope,
)
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import CLOSED_LEAD_STATUSES, RouterContext
from revops.router.domain.company_names import blocking_key, normalise_company
from revops.router.domain.matching import (
    normalise_domain,
)
from revops.router.domain.merge import merge_fields, stamp, stamps_of
from revops.router.domain.reps import REGIONS, Rep
from revops.router.domain.transfers import transfer_account, transfer_message
from revops.router.journal import add_events, notification, transferred_event
from revops.router.lead_changes import LeadChanges, lead_refs
from revops.router.store import load_reps


@dataclass
class _Transfer:
    """An owner change of a known account (``transfer``), as the account was before it;
    ``recorded``: as the journal has it (a rebuild), else decided now."""

    account_id: str
    label: str
    previous_owner: str | None
    previous_sdr: str | None
    new_owner: str
    at: datetime
    change_id: str
    recorded: AccountTransferred | None = None


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
    recorded = await _recorded_transfers(session, ctx, ids)
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
            transfer = _Transfer(
                p.account_id,
                before[2],
                before[0],
                before[1],
                row["owner_id"],
                event.occurred_at,
                event.id,
                recorded.get(event.id),
            )
            row["sdr_id"] = _sdr_after(transfer, reps)
            transfers.append(transfer)
        latest = row["updated_at"]
        row["updated_at"] = event.occurred_at if latest is None else max(latest, event.occurred_at)
        row["field_times"] = {name: list(s) for name, s in sorted(fields.items())}
    touched = sorted({e.payload.account_id for e in events if e.payload.change != "deleted"})
    await _store_accounts(session, [accounts[a] for a in touched], domains)
    if transfers:
        await _transfer_leads(session, ctx, transfers, reps)


async def on_domains_set(session: AsyncSession, event: AccountDomainsSetEvent) -> None:
    """An admin's list of an account's domains: taken if it is newer than the change that
    gave the account its domains (the CRM's or an admin's), as every account field is, so
    a replay in any order leaves the same list. On a rebuild it may come before the
    account's creation: the account is then created with its domains alone."""
    p = event.payload
    found = (
        await session.execute(
            select(m.accounts).where(m.accounts.c.id == p.account_id).with_for_update()
        )
    ).first()
    row: dict[str, Any] = (
        dict(found._mapping)
        if found is not None
        else {**dict.fromkeys(c.name for c in m.accounts.c), "id": p.account_id}
    )
    fields = stamps_of(row["field_times"])
    domains = sorted({d for d in (normalise_domain(x) for x in p.domains) if d})
    if not merge_fields({}, fields, {"domains": domains}, stamp(event.occurred_at, event.id)):
        return
    row["field_times"] = {name: list(s) for name, s in sorted(fields.items())}
    await _store_accounts(session, [row], {p.account_id: domains})


async def _recorded_transfers(
    session: AsyncSession, ctx: RouterContext, account_ids: Sequence[str]
) -> dict[str, AccountTransferred]:
    """The journal's owner changes of these accounts, by the change that made them (only
    a rebuilt schema has any)."""
    if not ctx.journal.may_have_records:
        return {}
    rows = await session.execute(
        select(m.recorded_transfers.c.change_id, m.recorded_transfers.c.transfer).where(
            one_of(m.recorded_transfers.c.account_id, account_ids)
        )
    )
    return {str(c): AccountTransferred.model_validate(v) for c, v in rows}


def _sdr_after(t: _Transfer, reps: Mapping[str, Rep]) -> str | None:
    """The account's SDR after the owner change: as recorded, else the new owner's pair
    (the previous SDR stays while nobody new takes over)."""
    if t.recorded is not None:
        return t.recorded.to_sdr_id
    outcome = transfer_account(
        t.label, t.previous_owner, t.new_owner, reps, [], t.at, t.previous_sdr
    )
    return outcome.new_sdr_id


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
        names = tuple(c.name for c in m.accounts.c)
        await session.execute(bulk.upsert(m.accounts, names), bulk.arrays(m.accounts, names, rows))
        await store_account_names(session, {str(r["id"]): r["name"] for r in rows})
    if domains:
        await session.execute(
            delete(m.account_domains).where(one_of(m.account_domains.c.account_id, sorted(domains)))
        )
        pairs = [{"domain": d, "account_id": a} for a, names in domains.items() for d in names]
        if pairs:
            columns = ("domain", "account_id")
            await session.execute(
                bulk.insert(m.account_domains, columns).on_conflict_do_nothing(),
                bulk.arrays(m.account_domains, columns, pairs),
            )


async def _transfer_leads(
    session: AsyncSession,
    ctx: RouterContext,
    transfers: Sequence[_Transfer],
    reps: Mapping[str, Rep],
) -> None:
    """``transfer`` for every owner change of the run: the open leads move to the new
    SDR (the last move wins), each move is recorded and written back to the CRMs the
    lead is known in, both SDRs are told, and the change is journaled
    (``account.transferred``). A recorded change (a rebuild) moves nothing here: its
    leads take their recorded moves when they are routed again (``leads``); it is
    journaled again, but nobody is told or written to again."""
    live = [t for t in transfers if t.recorded is None]
    open_leads = await _open_leads(session, sorted({t.account_id for t in live}))
    owners: dict[str, str] = {}
    moves: list[dict[str, Any]] = []
    changes = LeadChanges(ctx)
    events: list[Envelope] = []
    for t in transfers:
        record = t.recorded or _decide_transfer(t, reps, open_leads.get(t.account_id, []))
        for lead_id in record.lead_ids if t.recorded is None else ():
            assert record.to_sdr_id is not None  # leads move only to an SDR
            owners[lead_id] = record.to_sdr_id
            moves.append(_move_row(record, lead_id))
            lead = next(x for x in open_leads[t.account_id] if x.id == lead_id)
            for ref in lead_refs(lead.hubspot_id, lead.salesforce_id):
                changes.writeback(lead_id, ref, record.to_sdr_id, record.transferred_at)
        events.append(transferred_event(record))
        if t.recorded is not None:
            continue  # its SDRs were told by the first run
        if record.from_sdr_id and record.to_sdr_id and record.from_sdr_id != record.to_sdr_id:
            message = transfer_message(
                t.label,
                t.previous_owner,
                t.new_owner,
                t.at,
                record.from_sdr_id,
                record.to_sdr_id,
                record.lead_ids,
            )
            recipients = (record.from_sdr_id, record.to_sdr_id)
            events.append(notification("account_transfer", recipients, message, t.account_id, t.at))
    if owners:
        await move_leads(session, owners, moves)
    await add_events(session, ctx, events)
    await changes.write(session)


async def _open_leads(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The accounts' open leads (not converted, status not closed), with their CRM ids."""
    if not account_ids:
        return {}
    found: dict[str, list[Any]] = {}
    for row in await session.execute(
        select(m.leads.c.id, m.leads.c.account_id, m.leads.c.hubspot_id, m.leads.c.salesforce_id)
        .where(
            one_of(m.leads.c.account_id, account_ids),
            m.leads.c.converted_at.is_(None),
            or_(
                m.leads.c.status.is_(None),
                func.lower(m.leads.c.status).not_in(CLOSED_LEAD_STATUSES),
            ),
        )
        .order_by(m.leads.c.id)
    ):
        found.setdefault(str(row.account_id), []).append(row)
    return found


def _decide_transfer(
    t: _Transfer, reps: Mapping[str, Rep], open_leads: Sequence[Any]
) -> AccountTransferred:
    outcome = transfer_account(
        t.label,
        t.previous_owner,
        t.new_owner,
        reps,
        [x.id for x in open_leads],
        t.at,
        t.previous_sdr,
    )
    return AccountTransferred(
        account_id=t.account_id,
        change_id=t.change_id,
        transferred_at=t.at,
        previous_owner_id=t.previous_owner,
        owner_id=t.new_owner,
        from_sdr_id=outcome.previous_sdr_id,
        to_sdr_id=outcome.new_sdr_id,
        lead_ids=[move.lead_id for move in outcome.moves],
    )


def _move_row(record: AccountTransferred, lead_id: str) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "transferred_at": record.transferred_at,
        "account_id": record.account_id,
        "from_sdr_id": record.from_sdr_id,
        "to_sdr_id": record.to_sdr_id,
    }


async def move_leads(
    session: AsyncSession, owners: Mapping[str, str], moves: Sequence[Mapping[str, Any]]
) -> None:
    """The leads to their new SDRs, and the moves recorded in ``lead_moves``."""
    await session.execute(
        sa.update(m.leads)
        .where(m.leads.c.id == sa.bindparam("moved_id"))
        .values(owner_id=sa.bindparam("moved_to"), owner_role="SDR"),
        [{"moved_id": lead, "moved_to": sdr} for lead, sdr in owners.items()],
    )
    await session.execute(pg_insert(m.lead_moves).on_conflict_do_nothing(), list(moves))


async def store_account_names(session: AsyncSession, names: Mapping[str, str | None]) -> None:
    """The accounts' names as company names are compared (an account without one, or
    whose name is only a legal form, is matched by domain alone)."""
    keys = {a: normalise_company(n)[:255] if n else "" for a, n in names.items()}
    table = m.account_names
    await session.execute(delete(table).where(one_of(table.c.account_id, sorted(keys))))
    rows = [
        {"account_id": a, "name_key": k, "block": blocking_key(k)} for a, k in keys.items() if k
    ]
    if rows:
        columns = ("account_id", "name_key", "block")
        await session.execute(bulk.insert(table, columns), bulk.arrays(table, columns, rows))

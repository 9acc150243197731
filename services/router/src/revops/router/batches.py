"""The batch path: a batch's events applied in runs of one kind (new leads, touches, person,
account and opportunity changes), a few statements per run instead of a few per event.

Each run ends exactly as the per-event handlers of ``consumer`` (the runner's fallback)
would leave it, applied one at a time in the batch's order: the state a run needs is
loaded once, each event is applied to it in memory by the same rules, in order (so
several changes of one person, account or opportunity in a batch see each other, and
the newest in the partition's order wins), and the result is written a statement per
table. ``tests/integration/test_batches.py`` compares the two paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    AccountChangedEvent,
    ActivityLoggedEvent,
    Envelope,
    Event,
    OpportunityChangedEvent,
    PersonChangedEvent,
    RepChangedEvent,
)
from revops.events.consumer import BatchHandler, Handler
from revops.events.db import one_of
from revops.router import models as m
from revops.router.causal_order import WaitingLeads, leads_to_route_now
from revops.router.consumer import (
    CLOSED_LEAD_STATUSES,
    LeadChanges,
    LeadState,
    NewPerson,
    RouterContext,
    _ref_columns,
    add_events,
    lead_id_for,
    load_reps,
    make_handler,
    new_person_of,
    notification,
    on_activities,
    route_new_people,
)
from revops.router.domain.matching import normalise_domain
from revops.router.domain.merge import merge_fields, stamp, stamps_of
from revops.router.domain.reps import REGIONS, Rep
from revops.router.domain.transfers import transfer_account
from revops.router.roster import apply_rep_changes
from revops.router.settings import RouterSettings

RunKind = Literal["lead", "activity", "person", "account", "opportunity", "rep"]


def run_kind(event: Event) -> RunKind | None:
    """Which run an event joins; None for the events applied one at a time (conversions)."""
    if new_person_of(event) is not None:
        return "lead"
    match event:
        case ActivityLoggedEvent():
            return "activity"
        case PersonChangedEvent():
            return "person"
        case AccountChangedEvent():
            return "account"
        case OpportunityChangedEvent():
            return "opportunity"
        case RepChangedEvent():
            return "rep"
        case _:
            return None


def make_batch_handler(settings: RouterSettings, waiting: WaitingLeads) -> BatchHandler:
    """A whole batch: each run of consecutive events of one kind applied together, runs
    and the other events (conversions) in the batch's order, which puts the CRM state
    before the forms and sign-ups (the order of ``main.SPEC.topics``)."""
    ctx = RouterContext(settings, settings.policy(), settings.regions())
    handle = make_event_handler(settings, waiting)

    async def handle_batch(session: AsyncSession, events: Sequence[Event]) -> None:
        run: list[Event] = []
        kind: RunKind | None = None
        for event in events:
            this = run_kind(event)
            if this != kind or this is None:
                if kind is not None:
                    await apply_run(session, ctx, kind, run, waiting)
                run, kind = [], this
            if this is not None:
                run.append(event)
                continue
            await handle(session, event)
        if kind is not None:
            await apply_run(session, ctx, kind, run, waiting)

    return handle_batch


def make_event_handler(settings: RouterSettings, waiting: WaitingLeads) -> Handler:
    """One event at a time (the runner's fallback after a failed batch): a run of one, by
    the batch path's code."""
    ctx = RouterContext(settings, settings.policy(), settings.regions())
    handle = make_handler(settings)

    async def handle_event(session: AsyncSession, event: Event) -> None:
        kind = run_kind(event)
        if kind is None:
            await handle(session, event)
        else:
            await apply_run(session, ctx, kind, [event], waiting)

    return handle_event


async def route_new_leads(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson], waiting: WaitingLeads
) -> None:
    """Forms and sign-ups: routed now if the CRM state they may need is applied, else held."""
    now = await leads_to_route_now(session, ctx, people)
    if len(now) < len(people):
        waiting.expect()
    if now:
        await route_new_people(session, ctx, now)


async def apply_run(
    session: AsyncSession,
    ctx: RouterContext,
    kind: RunKind,
    run: Sequence[Event],
    waiting: WaitingLeads,
) -> None:
    """A run of one kind (the isinstance filters only narrow the types)."""
    if kind == "lead":
        people = [p for p in (new_person_of(e) for e in run) if p is not None]
        await route_new_leads(session, ctx, people, waiting)
    elif kind == "activity":
        await on_activities(session, [e for e in run if isinstance(e, ActivityLoggedEvent)])
    elif kind == "person":
        changes = [e for e in run if isinstance(e, PersonChangedEvent)]
        await on_people_changed(session, ctx, changes)
    elif kind == "account":
        accounts = [e for e in run if isinstance(e, AccountChangedEvent)]
        await on_accounts_changed(session, ctx, accounts)
    elif kind == "rep":
        await apply_rep_changes(session, [e for e in run if isinstance(e, RepChangedEvent)], ctx)
    else:
        opportunities = [e for e in run if isinstance(e, OpportunityChangedEvent)]
        await on_opportunities_changed(session, opportunities)


# --- person changes --------------------------------------------------------------------------


async def on_people_changed(
    session: AsyncSession,
    ctx: RouterContext,
    events: Sequence[PersonChangedEvent],
) -> None:
    """``on_person_changed`` for a run, in segments of a few statements each."""
    start = 0
    while start < len(events):
        start = await _people_segment(session, ctx, events, start)


@dataclass
class _PeoplePlan:
    end: int  # the segment is events[start:end]
    contacts: dict[str, dict[str, Any]]  # contact id -> the columns the segment set
    new_people: list[NewPerson]  # leads the segment creates (CRM leads), in order
    changes: LeadChanges


async def _people_segment(
    session: AsyncSession,
    ctx: RouterContext,
    events: Sequence[PersonChangedEvent],
    start: int,
) -> int:
    """Apply ``events[start:end]``, returns ``end``.

    Contacts are written first, then the segment's new leads are routed together, then
    the leads' ids, statuses and write-backs. That is the one-at-a-time result as long
    as no contact changes after a lead was created (routing a lead looks at the contacts
    with its email); so a contact change after a creation starts the next segment.
    """
    rows = await _load_leads(session, events[start:])
    plan = _plan_people(ctx, events, start, len(events), rows, None)
    if plan.contacts:
        await _upsert_contacts(session, plan.contacts)
    if plan.new_people:
        created = await route_new_people(session, ctx, plan.new_people)
        # Again, with the new leads as routed (their owners get the write-backs).
        plan = _plan_people(ctx, events, start, plan.end, rows, created)
    await plan.changes.write(session)
    return plan.end


def _plan_people(
    ctx: RouterContext,
    events: Sequence[PersonChangedEvent],
    start: int,
    stop: int,
    rows: Sequence[Mapping[Any, Any]],
    created: Mapping[str, Mapping[str, Any]] | None,
) -> _PeoplePlan:
    """``on_person_changed`` event by event, on the leads in memory. ``created``: the rows
    of the leads the segment creates, once routed (None: not routed yet)."""
    leads = _LeadIndex(LeadState.of(row) for row in rows)
    plan = _PeoplePlan(start, {}, [], LeadChanges(ctx))
    for event in events[start:stop]:
        p = event.payload
        if p.person_type == "contact":
            if plan.new_people:
                break
            values = {"email": p.email, "account_id": p.account_id}
            plan.contacts.setdefault(p.source_ref.object_id, {}).update(
                {k: v for k, v in values.items() if v is not None}
            )
            if p.source_ref.system == "hubspot":
                # A HubSpot contact is our lead before it is qualified (see on_person_changed).
                known = leads.find(p.email, p.source_ref)
                if known is not None:
                    leads.attach(plan.changes, known, p.source_ref)
                    if p.status is not None:
                        plan.changes.status(known, p.status, event.occurred_at)
        elif p.change not in ("deleted", "merged"):
            lead = leads.find(p.email, p.source_ref)
            if lead is None and p.email is not None:
                person = NewPerson(
                    event.id,
                    p.email,
                    p.created_at or event.occurred_at,
                    "crm",
                    None,
                    p.country,
                    bool(p.is_consultant),
                    p.source_ref,
                    p.created_by_id,
                )
                plan.new_people.append(person)
                row = created[p.email] if created is not None else _unrouted_row(person)
                lead = leads.add(LeadState.of(row))
            elif lead is not None:
                leads.attach(plan.changes, lead, p.source_ref)
            if lead is not None and p.status is not None:
                plan.changes.status(lead, p.status, event.occurred_at)
        plan.end += 1
    return plan


def _unrouted_row(person: NewPerson) -> dict[str, Any]:
    """A lead about to be created, before routing decides its owner."""
    refs = _ref_columns(person.source_ref)
    return {
        "id": lead_id_for(person.email),
        "email": person.email,
        "hubspot_id": refs.get("hubspot_id"),
        "salesforce_id": refs.get("salesforce_id"),
        "owner_id": None,
        "status": "New",
        "created_at": person.occurred_at,
    }


class _LeadIndex:
    """``find_lead`` on leads in memory: by email, else by the CRM ids."""

    def __init__(self, leads: Any) -> None:
        self._by: dict[str, dict[str, LeadState]] = {
            "email": {},
            "hubspot_id": {},
            "salesforce_id": {},
        }
        for lead in leads:
            self.add(lead)

    def add(self, lead: LeadState) -> LeadState:
        self._by["email"].setdefault(lead.email, lead)
        for column in ("hubspot_id", "salesforce_id"):
            value = getattr(lead, column)
            if value:
                self._by[column].setdefault(value, lead)
        return lead

    def find(self, email: str | None, ref: Any) -> LeadState | None:
        if email:
            lead = self._by["email"].get(email)
            if lead is not None:
                return lead
        for column, value in _ref_columns(ref).items():
            if value:
                lead = self._by[column].get(value)
                if lead is not None:
                    return lead
        return None

    def attach(self, changes: LeadChanges, lead: LeadState, ref: Any) -> None:
        for column in changes.attach(lead, ref):
            self._by[column].setdefault(getattr(lead, column), lead)


_LEAD_STATE_COLUMNS = (
    "id",
    "email",
    "hubspot_id",
    "salesforce_id",
    "owner_id",
    "status",
    "created_at",
    "first_status_change_at",
)


async def _load_leads(
    session: AsyncSession, events: Sequence[PersonChangedEvent]
) -> list[Mapping[Any, Any]]:
    """Every lead an event of the run may find: by its email or its CRM id."""
    emails = sorted({e.payload.email for e in events if e.payload.email})
    refs: dict[str, set[str]] = {"hubspot_id": set(), "salesforce_id": set()}
    for e in events:
        for column, value in _ref_columns(e.payload.source_ref).items():
            if value:
                refs[column].add(value)
    about = [one_of(m.leads.c.email, emails)]
    about += [one_of(m.leads.c[column], sorted(ids)) for column, ids in refs.items() if ids]
    columns = [m.leads.c[c] for c in _LEAD_STATE_COLUMNS]
    rows = await session.execute(select(*columns).where(or_(*about)))
    return [row._mapping for row in rows]


async def _upsert_contacts(
    session: AsyncSession, contacts: Mapping[str, Mapping[str, Any]]
) -> None:
    """One statement: a column a change did not carry (None) keeps its stored value."""
    stmt = pg_insert(m.contacts).values(
        id=sa.bindparam("new_id"),
        email=sa.bindparam("new_email", type_=m.contacts.c.email.type),
        account_id=sa.bindparam("new_account_id", type_=m.contacts.c.account_id.type),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "email": func.coalesce(stmt.excluded.email, m.contacts.c.email),
            "account_id": func.coalesce(stmt.excluded.account_id, m.contacts.c.account_id),
        },
    )
    await session.execute(
        stmt,
        [
            {
                "new_id": contact_id,
                "new_email": values.get("email"),
                "new_account_id": values.get("account_id"),
            }
            for contact_id, values in contacts.items()
        ],
    )


# --- account changes -------------------------------------------------------------------------


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


# --- opportunity changes ---------------------------------------------------------------------

_OPPORTUNITY_COLUMNS = ("account_id", "owner_id", "is_closed", "is_won", "created_at", "close_date")


async def on_opportunities_changed(
    session: AsyncSession, events: Sequence[OpportunityChangedEvent]
) -> None:
    """A run of opportunity changes, merged field by field with what is stored (the
    newest change of each field wins, whatever the arrival order): the opportunities
    deleted in the run are deleted, then every other one touched is written whole."""
    ids = sorted({e.payload.opportunity_id for e in events})
    table = m.opportunities
    rows: dict[str, dict[str, Any] | None] = {
        row.id: dict(row._mapping)
        for row in await session.execute(select(table).where(one_of(table.c.id, ids)))
    }
    stamps = {o: stamps_of(row["field_times"]) for o, row in rows.items() if row is not None}
    deleted: set[str] = set()
    for event in events:
        p = event.payload
        if p.change == "deleted":
            rows[p.opportunity_id] = None
            stamps[p.opportunity_id] = {}
            deleted.add(p.opportunity_id)
            continue
        row = rows.get(p.opportunity_id)
        if row is None:
            row = rows[p.opportunity_id] = {
                **dict.fromkeys(c.name for c in table.c),
                "id": p.opportunity_id,
                "is_closed": False,
            }
        fields = stamps.setdefault(p.opportunity_id, {})
        change = {c: getattr(p, c) for c in _OPPORTUNITY_COLUMNS}
        merge_fields(row, fields, change, stamp(event.occurred_at, event.id))
        row["field_times"] = {name: list(s) for name, s in sorted(fields.items())}
    if deleted:
        await session.execute(delete(table).where(one_of(table.c.id, sorted(deleted))))
    written = [row for row in rows.values() if row is not None and row["id"] in ids]
    if written:
        stmt = pg_insert(table)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={c.name: stmt.excluded[c.name] for c in table.c if c.name != "id"},
            ),
            written,
        )

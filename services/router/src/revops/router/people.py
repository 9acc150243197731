"""Person changes (CRM leads and contacts): a run applied in segments of a few
statements each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import bulk
from revops.events.catalogue import (
    PersonChangedEvent,
)
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.lead_changes import LeadChanges, LeadState
from revops.router.leads import NewPerson, lead_id_for, route_new_people
from revops.router.store import ref_columns


async def on_people_changed(
    session: AsyncSession,
    ctx: RouterContext,
    events: Sequence[PersonChangedEvent],
) -> None:
    """A run of person changes, in segments of a few statements each.

    A contact is stored (its email and account: touches on it count for leads with its
    email); a HubSpot contact is also our lead before it is qualified, so its id and its
    lead status (the SLA's first status change) go to the lead with its email. A CRM lead
    unknown here is a new lead, routed at once; a known one gets its CRM id and status.
    """
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
    """The segment's changes event by event, on the leads in memory. ``created``: the rows
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
                # A HubSpot contact is our lead before it is qualified (on_people_changed).
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
                    company=p.company,
                    received_at_s=event.received_at.timestamp(),
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
    refs = ref_columns(person.source_ref)
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
        for column, value in ref_columns(ref).items():
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
        for column, value in ref_columns(e.payload.source_ref).items():
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
    rows = [
        {"id": contact_id, "email": values.get("email"), "account_id": values.get("account_id")}
        for contact_id, values in contacts.items()
    ]
    await session.execute(_contacts_upsert(), bulk.arrays(m.contacts, _CONTACT_COLUMNS, rows))


_CONTACT_COLUMNS = ("id", "email", "account_id")


@cache
def _contacts_upsert() -> Insert:
    stmt = bulk.insert(m.contacts, _CONTACT_COLUMNS)
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "email": func.coalesce(stmt.excluded.email, m.contacts.c.email),
            "account_id": func.coalesce(stmt.excluded.account_id, m.contacts.c.account_id),
        },
    )

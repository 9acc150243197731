"""Attribution's handlers: note each event's facts, then decide once per batch.

The runner hands the batch handler the batch's new events inside one transaction. Each
event only notes the facts it brings (a form, a CRM record's fields, a conversion, an
opportunity's fields) in a unit of work; the unit of work then writes those facts in
bulk and decides again, from everything stored, every person and opportunity they can
change -- load, decide, store, in the batch's transaction with its inbox rows. Deciding
from the stored set of facts, not from the event in hand, is what makes late and
out-of-order events and replays give the same answers; deciding once per batch is what
makes it fast (a person with five events in a batch is decided once, not five times).
If the batch fails, the runner re-applies it one event at a time with `handle`, which
does the same for a unit of work of one event, so only a poison event is dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from revops.attribution import models
from revops.attribution.decisions import (
    Rules,
    affected_opportunities,
    opportunity_inputs,
    recompute_opportunities,
    recompute_people,
)
from revops.attribution.domain.lead_source import TouchKind
from revops.attribution.domain.pipeline import qualified_at
from revops.attribution.facts import OpportunityFacts, PersonFacts, Stamp, note, stamp, write
from revops.attribution.settings import AttributionSettings
from revops.events import bulk
from revops.events.catalogue import (
    Envelope,
    Event,
    FormSubmittedEvent,
    LeadConvertedEvent,
    OpportunityChangedEvent,
    PersonChangedEvent,
    SignupCreatedEvent,
)
from revops.events.consumer import BatchHandler, Handler
from revops.events.db import one_of

log = logging.getLogger(__name__)


@dataclass
class UnitOfWork:
    """The facts the events of one batch bring, written and decided on together."""

    rules: Rules
    # CRM id -> person, of the refs stored before the batch that its events need.
    stored_refs: Mapping[str, str] = field(default_factory=dict)
    people: dict[str, PersonFacts] = field(default_factory=dict)
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    touches: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities: dict[str, OpportunityFacts] = field(default_factory=dict)
    conversions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # People whose CRM record changed, and the earliest new touch of each touched person.
    changed_people: set[str] = field(default_factory=set)
    touched_people: dict[str, datetime] = field(default_factory=dict)

    def note_touch(self, touch: dict[str, Any]) -> None:
        self.touches[touch["touch_id"]] = touch
        person_id, at = touch["person_id"], touch["occurred_at"]
        self.touched_people[person_id] = min(at, self.touched_people.get(person_id, at))

    def note_person(self, facts: PersonFacts) -> None:
        note(self.people, facts)

    def note_opportunity(self, facts: OpportunityFacts) -> None:
        note(self.opportunities, facts)

    def note_ref(self, object_id: str, system: str, object_type: str, person_id: str) -> None:
        self.refs[object_id] = {
            "object_id": object_id,
            "system": system,
            "object_type": object_type,
            "person_id": person_id,
        }


# --- writing and deciding, once per batch ---------------------------------------------------


def _write_facts(session: Session, uow: UnitOfWork) -> list[dict[str, Any]]:
    """Write the batch's facts; returns the conversions whose person is now known."""
    if uow.refs:
        _write_rows(session, _upsert_refs(), models.person_refs, uow.refs)
    if uow.conversions:
        _write_rows(session, _upsert_conversions(), models.conversions, uow.conversions)
    conversions = _resolve_conversions(session, uow)
    for conversion in conversions:
        _note_conversion(uow, conversion)
    write(session, PersonFacts, uow.people.values())
    if uow.touches:
        _write_rows(session, _insert_touches(), models.touches, uow.touches)
    write(session, OpportunityFacts, uow.opportunities.values())
    return conversions


def _write_rows(
    session: Session, statement: Insert, table: Table, rows: Mapping[str, Mapping[str, Any]]
) -> None:
    """All the rows in one statement, in key order (instances lock in the same order)."""
    names = [c.name for c in table.c]
    session.execute(statement, bulk.arrays(table, names, [rows[k] for k in sorted(rows)]))


@cache
def _upsert_refs() -> Insert:
    table = models.person_refs
    statement = bulk.insert(table, tuple(c.name for c in table.c))
    return statement.on_conflict_do_update(
        index_elements=["object_id"], set_={"person_id": statement.excluded.person_id}
    )


@cache
def _upsert_conversions() -> Insert:
    table = models.conversions
    statement = bulk.insert(table, tuple(c.name for c in table.c))
    return statement.on_conflict_do_update(
        index_elements=["lead_id"],
        set_={
            c.name: func.coalesce(statement.excluded[c.name], c)
            for c in table.c
            if c.name != "lead_id"
        },
    )


@cache
def _insert_touches() -> Insert:
    table = models.touches
    statement = bulk.insert(table, tuple(c.name for c in table.c))
    return statement.on_conflict_do_nothing(index_elements=["touch_id"])


def _resolve_conversions(session: Session, uow: UnitOfWork) -> list[dict[str, Any]]:
    """Conversions whose person became known: this batch's by email, and any earlier one
    naming a CRM id that this batch's refs resolve (the lead's event came after)."""
    resolved = [c for c in uow.conversions.values() if c["person_id"] is not None]
    if uow.refs:
        table, refs = models.conversions, models.person_refs
        statement = (
            update(table)
            .where(
                table.c.person_id.is_(None),
                or_(refs.c.object_id == table.c.lead_id, refs.c.object_id == table.c.contact_id),
            )
            .values(person_id=refs.c.person_id)
            .returning(*table.c)
        )
        resolved.extend(dict(row) for row in session.execute(statement).mappings())
    return resolved


def _note_conversion(uow: UnitOfWork, conversion: Mapping[str, Any]) -> None:
    """A converted lead becomes a contact of the account, and its opportunity's lead."""
    at = conversion["occurred_at"]
    when = stamp(at, f"conversion:{conversion['lead_id']}")
    person_id = conversion["person_id"]
    uow.note_person(
        PersonFacts(
            person_id, at, account_id=conversion["account_id"], person_type="contact", stamp=when
        )
    )
    if conversion["opportunity_id"]:
        uow.note_opportunity(
            OpportunityFacts(
                conversion["opportunity_id"], at, converted_person_id=person_id, stamp=when
            )
        )


def apply_unit_of_work(session: Session, uow: UnitOfWork) -> None:
    """Write the facts, then decide again everything they can change."""
    before = opportunity_inputs(session, uow.changed_people)
    conversions = _write_facts(session, uow)
    crm_people = uow.changed_people | {c["person_id"] for c in conversions}
    touch_only = {p: at for p, at in uow.touched_people.items() if p not in crm_people}
    decided = recompute_people(
        session, set(uow.people) | crm_people, uow.rules, later_touches=touch_only
    )
    # A CRM change matters to opportunities only if it moved what they read (a status
    # or owner change does not), and then on the old account as on the new one.
    after = opportunity_inputs(session, decided | crm_people)
    changed = decided | {p for p in crm_people if before.get(p) != after.get(p)}
    # Everyone else's news that opportunities read is their new forms (a sign-up never
    # influences one) -- whether or not their CRM record changed too.
    new_forms = [
        (touch["person_id"], touch["occurred_at"])
        for touch in uow.touches.values()
        if touch["kind"] == TouchKind.FORM.value and touch["person_id"] not in changed
    ]
    opportunity_ids = set(uow.opportunities) | {
        c["opportunity_id"] for c in conversions if c["opportunity_id"]
    }
    opportunities = affected_opportunities(
        session,
        opportunity_ids,
        _accounts_and_since(changed, before, after),
        new_forms,
        uow.rules.influence.window,
    )
    recompute_opportunities(session, opportunities, uow.rules)


def _accounts_and_since(
    changed: set[str], before: Mapping[str, tuple[Any, ...]], after: Mapping[str, tuple[Any, ...]]
) -> dict[str, tuple[frozenset[str], datetime]]:
    """Each changed person's accounts (before and after the batch) and the earliest time
    they were created or seen (before or after)."""
    result = {}
    for person_id in changed:
        states = [s for s in (before.get(person_id), after.get(person_id)) if s is not None]
        times = [t for state in states for t in (state[1], state[2]) if t is not None]
        if times:
            accounts = frozenset(state[0] for state in states if state[0])
            result[person_id] = (accounts, min(times))
    return result


# --- the handlers --------------------------------------------------------------------------


def _stamp(event: Envelope) -> Stamp:
    return stamp(event.occurred_at, event.id)


def _person_by_ref(uow: UnitOfWork, object_id: str) -> str | None:
    if object_id in uow.refs:
        return uow.refs[object_id]["person_id"]
    return uow.stored_refs.get(object_id)


def _unnamed_people(events: Sequence[Event]) -> list[str]:
    """The CRM ids of the batch's people events without an email: their person is found
    from the CRM id, among the stored refs if not in the batch's."""
    return [
        event.payload.source_ref.object_id
        for event in events
        if isinstance(event, PersonChangedEvent)
        and not event.payload.email
        and event.payload.change not in ("deleted", "merged")
    ]


async def _stored_refs(session: AsyncSession, object_ids: Collection[str]) -> dict[str, str]:
    if not object_ids:
        return {}
    refs = models.person_refs
    found = await session.execute(
        select(refs.c.object_id, refs.c.person_id).where(one_of(refs.c.object_id, object_ids))
    )
    return {object_id: person_id for object_id, person_id in found}


def on_form(uow: UnitOfWork, event: FormSubmittedEvent) -> None:
    form = event.payload
    uow.note_touch(
        {
            "touch_id": event.id,
            "person_id": form.email,
            "kind": TouchKind.FORM.value,
            "form_id": form.form_id,
            "form_type": form.form_type,
            "campaign_id": form.campaign_id,
            "page_url": form.page_url,
            "referrer": form.referrer,
            "occurred_at": event.occurred_at,
            "first_page_url": form.first_page_url,
            "first_referrer": form.first_referrer,
        }
    )
    uow.note_person(
        PersonFacts(form.email, event.occurred_at, email=form.email, stamp=_stamp(event))
    )
    if form.source_ref is not None:
        ref = form.source_ref
        uow.note_ref(ref.object_id, ref.system, ref.object_type, form.email)


def on_signup(uow: UnitOfWork, event: SignupCreatedEvent) -> None:
    signup = event.payload
    kind = TouchKind.CLOUD_SIGNUP if signup.signup_type == "cloud" else TouchKind.PRIVATE_INSTALL
    uow.note_touch(
        {
            "touch_id": event.id,
            "person_id": signup.email,
            "kind": kind.value,
            "form_id": None,
            "form_type": None,
            "campaign_id": None,
            "page_url": signup.first_source_url,
            "referrer": signup.referrer,
            "occurred_at": event.occurred_at,
            # A sign-up's page is already the first source URL the product recorded.
            "first_page_url": None,
            "first_referrer": None,
        }
    )
    uow.note_person(
        PersonFacts(signup.email, event.occurred_at, email=signup.email, stamp=_stamp(event))
    )
    uow.note_ref(signup.user_id, "product", "user", signup.email)


def on_person(uow: UnitOfWork, event: PersonChangedEvent) -> None:
    person = event.payload
    if person.change in ("deleted", "merged"):
        return  # history stays: a deleted record's past forms still influenced pipeline
    ref = person.source_ref
    person_id = person.email or _person_by_ref(uow, ref.object_id)
    person_id = person_id or f"ref:{ref.system}:{ref.object_id}"
    created = person.change == "created"
    role = uow.rules.rep_roles.get(person.created_by_id or "")
    uow.note_person(
        PersonFacts(
            person_id,
            event.occurred_at,
            email=person.email,
            person_type=person.person_type,
            account_id=person.account_id,
            crm_created_at=person.created_at or (event.occurred_at if created else None),
            created_by_id=person.created_by_id,
            created_by_role=role.value if role else None,
            crm_lead_source=person.lead_source,
            offline_detail=ref.system.upper() if created else None,
            stamp=_stamp(event),
        )
    )
    uow.note_ref(ref.object_id, ref.system, ref.object_type, person_id)
    uow.changed_people.add(person_id)


def on_conversion(uow: UnitOfWork, event: LeadConvertedEvent) -> None:
    conversion = event.payload
    uow.conversions[conversion.lead_id] = {
        "lead_id": conversion.lead_id,
        "account_id": conversion.account_id,
        "contact_id": conversion.contact_id,
        "opportunity_id": conversion.opportunity_id,
        "email": conversion.email,
        "occurred_at": event.occurred_at,
        "person_id": conversion.email,
    }
    if conversion.email:
        uow.note_person(
            PersonFacts(
                conversion.email, event.occurred_at, email=conversion.email, stamp=_stamp(event)
            )
        )
        uow.note_ref(conversion.lead_id, "salesforce", "Lead", conversion.email)
        if conversion.contact_id:
            uow.note_ref(conversion.contact_id, "salesforce", "Contact", conversion.email)
    if conversion.opportunity_id:
        uow.note_opportunity(
            OpportunityFacts(
                conversion.opportunity_id,
                event.occurred_at,
                account_id=conversion.account_id,
                converted_lead_id=conversion.lead_id,
                converted_at=event.occurred_at,
                stamp=_stamp(event),
            )
        )


def on_opportunity(uow: UnitOfWork, event: OpportunityChangedEvent) -> None:
    opportunity = event.payload
    created = opportunity.change == "created"
    uow.note_opportunity(
        OpportunityFacts(
            opportunity.opportunity_id,
            event.occurred_at,
            account_id=opportunity.account_id,
            name=opportunity.name,
            stage=opportunity.stage,
            amount=opportunity.amount,
            close_date=opportunity.close_date,
            owner_id=opportunity.owner_id,
            is_closed=opportunity.is_closed,
            is_won=opportunity.is_won,
            is_deleted=True if opportunity.change == "deleted" else None,
            given_lead_source=opportunity.lead_source,
            crm_created_at=opportunity.created_at or (event.occurred_at if created else None),
            qualified_at=qualified_at(None, opportunity.stage, event.occurred_at),
            stamp=_stamp(event),
        )
    )


def note_event(uow: UnitOfWork, event: Event) -> None:
    match event:
        case FormSubmittedEvent():
            on_form(uow, event)
        case SignupCreatedEvent():
            on_signup(uow, event)
        case PersonChangedEvent():
            on_person(uow, event)
        case LeadConvertedEvent():
            on_conversion(uow, event)
        case OpportunityChangedEvent():
            on_opportunity(uow, event)
        case _:
            pass  # accounts, activities and derived events decide nothing here


async def apply_events(session: AsyncSession, rules: Rules, events: Sequence[Event]) -> None:
    # Nothing is written before all events are noted: the stored refs are read once.
    uow = UnitOfWork(rules, stored_refs=await _stored_refs(session, _unnamed_people(events)))
    for event in events:
        note_event(uow, event)
    # The decisions are synchronous code over the same connection and transaction.
    await session.run_sync(apply_unit_of_work, uow)


def make_handler(settings: AttributionSettings) -> Handler:
    """One event at a time: the runner's fallback when a batch fails."""
    rules = Rules.from_settings(settings)

    async def handle(session: AsyncSession, event: Event) -> None:
        await apply_events(session, rules, [event])

    return handle


def make_batch_handler(settings: AttributionSettings) -> BatchHandler:
    """A batch's new events at once: the runner's fast path."""
    rules = Rules.from_settings(settings)

    async def handle_batch(session: AsyncSession, events: Sequence[Event]) -> None:
        await apply_events(session, rules, events)

    return handle_batch

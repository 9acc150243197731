"""The router's event handlers: load state, decide with the domain, store, in the batch's
transaction (the runner commits it, with the inbox rows and the outbox rows).

These apply one event at a time (the runner's fallback after a failed batch) and are the
reference for ``batches``, which applies whole runs of a batch in a few statements; new
leads are routed a batch at a time here too (``route_new_people``).

Concurrency: every handler that may take a rotation turn first locks all the queue rows
in name order (``SELECT ... ORDER BY name FOR UPDATE``). Any number of router instances
thus take turns one transaction at a time, in one global lock order (no deadlocks), and
the ``(queue, slot)`` primary key of ``queue_turns`` makes a reused turn impossible.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    Row,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    ActivityLoggedEvent,
    Envelope,
    Event,
    FormSubmittedEvent,
    LeadConvertedEvent,
    LeadRouted,
    LeadRoutedEvent,
    NotificationRequested,
    NotificationRequestedEvent,
    SignupCreatedEvent,
    SourceRef,
    derived_event_id,
    make_event,
)
from revops.events.codec import encode_event
from revops.events.consumer import Handler
from revops.events.db import one_of
from revops.events.outbox import KAFKA
from revops.router import models as m
from revops.router.domain.assignment import AeAssignment, ae_queue, assign_ae
from revops.router.domain.matching import (
    AccountDomains,
    AccountMatch,
    candidate_domains,
    email_domain,
    match_account,
)
from revops.router.domain.regions import RegionMap
from revops.router.domain.reps import REGIONS, Region, Rep, Role
from revops.router.domain.rotation import Member, RotationState, Turn
from revops.router.domain.rules import (
    Account,
    Decision,
    Lead,
    Opportunity,
    QueueSnapshot,
    RoutingContext,
    RoutingPolicy,
    RuleName,
    Touch,
    TouchTarget,
    inbound_queue,
    members_of,
    queue_of_lead,
    route_lead,
)
from revops.router.domain.transfers import LeadMove, sao_credit
from revops.router.domain.windows import utc_day
from revops.router.settings import RouterSettings

log = logging.getLogger(__name__)

HUBSPOT_OWNER = "hubspot_owner"
SALESFORCE_OWNER = "salesforce_owner"
CLOSED_LEAD_STATUSES = frozenset({"converted", "unqualified", "bad-data", "bad data"})
_SDR: Role = "SDR"
_AE: Role = "AE"
ALL_QUEUES: tuple[tuple[str, Role, Region], ...] = tuple(
    (name, role, region)
    for region in REGIONS
    for name, role in ((inbound_queue(region), _SDR), (ae_queue(region), _AE))
)


@dataclass
class Journal:
    """Whether ``recorded_routes`` may hold decisions to re-apply. Rows only arrive there
    when an instance starts on an empty schema, before it consumes; an instance that found
    the table empty after that step skips the look-up for good."""

    may_have_records: bool = True


JOURNAL = Journal()


@dataclass(frozen=True)
class RouterContext:
    settings: RouterSettings
    policy: RoutingPolicy
    region_map: RegionMap

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def writeback_destinations(self) -> dict[str, str]:
        """Which CRM systems get the owner written back: system -> outbox destination."""
        out: dict[str, str] = {}
        if self.settings.hubspot_token is not None:
            out["hubspot"] = HUBSPOT_OWNER
        if self.settings.salesforce_token is not None and self.settings.salesforce_instance_url:
            out["salesforce"] = SALESFORCE_OWNER
        return out


def lead_id_for(email: str) -> str:
    """The router's own id of a lead: stable per email, so a replay finds the same one."""
    return "L" + derived_event_id("router-lead", email)[:23]


def new_person_of(event: Event) -> NewPerson | None:
    """The new lead an inbound form or sign-up may create."""
    match event:
        case FormSubmittedEvent():
            p = event.payload
            return NewPerson(
                event.id,
                p.email,
                event.occurred_at,
                "form",
                p.form_type,
                p.country,
                p.is_consultant,
                p.source_ref,
                None,
            )
        case SignupCreatedEvent():
            s = event.payload
            ref = SourceRef(system="product", object_type="user", object_id=s.user_id)
            return NewPerson(
                event.id,
                s.email,
                event.occurred_at,
                "signup",
                f"signup_{s.signup_type}",
                s.country,
                False,
                ref,
                None,
            )
        case _:
            return None


def make_handler(settings: RouterSettings) -> Handler:
    """The events applied one at a time, in the batch's order: conversions (each takes a
    turn of an AE rotation). Every other event goes through ``batches.apply_run``, alone
    or in a run."""
    ctx = RouterContext(settings, settings.policy(), settings.regions())

    async def handle(session: AsyncSession, event: Event) -> None:
        if isinstance(event, LeadConvertedEvent):
            await on_lead_converted(session, ctx, event)

    return handle


# --- new leads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPerson:
    event_id: str
    email: str
    occurred_at: datetime
    kind: str  # form, signup, crm
    form_type: str | None
    country: str | None
    is_consultant: bool
    source_ref: SourceRef | None
    created_by_id: str | None
    # Set when the lead was routed without the CRM state it waited for (the bound).
    waited: str | None = None


_HELD_QUEUES = "router.held_queues"


async def lock_queues(session: AsyncSession, names: Iterable[str]) -> dict[str, RotationState]:
    """Lock the rotation rows of ``names`` not yet locked by this transaction, in name
    order; returns the state of every rotation the transaction holds (kept current by
    the routing in this transaction). A batch locks only the rotations it uses, and none
    when it routes nothing: other instances' batches of CRM changes never wait on it. Two
    transactions that lock in two steps can deadlock; Postgres then stops one, and the
    runner applies its batch again."""
    held: dict[str, RotationState] = session.info.setdefault(_HELD_QUEUES, {})
    missing = sorted({n for n in names if n not in held})
    if missing:
        q = m.queues
        rows = await session.execute(
            select(q.c.name, q.c.cursor, q.c.rotation)
            .where(one_of(q.c.name, missing))
            .order_by(q.c.name)
            .with_for_update()
        )
        held.update(
            {str(name): RotationState.from_json(int(cursor), value) for name, cursor, value in rows}
        )
    return held


def later(a: RotationState | None, b: RotationState) -> RotationState:
    """The state after the later of two turns (a recorded decision re-applied on rebuild
    never moves a rotation back)."""
    return b if a is None or b.next_slot > a.next_slot else a


@dataclass
class _Batch:
    """What a batch of new people needs from the database, loaded in a few queries."""

    existing: dict[str, Row[Any]]
    domain_owners: dict[str, list[str]]
    accounts: dict[str, Account]
    recorded: dict[str, Decision]
    # Touches by what a lead can be touched through: ("email" | "lead_ref" | "account" |
    # "contact_email", value); "contact_email" is the email of the touched contact.
    touch_index: dict[tuple[str, str], list[Row[Any]]]
    opportunities: dict[str, list[Opportunity]]
    counts: dict[tuple[str, date], dict[str, int]]
    later_touches: list[Row[Any]]


def insert_from_arrays(table: sa.Table, columns: Sequence[str], prefix: str = "") -> Any:
    """``INSERT INTO table (columns) SELECT * FROM unnest($1, $2, ...)`` in the arrays'
    order: one statement and one execution for any number of rows (an executemany
    executes, and SQLAlchemy processes the parameters of, every row on its own). The
    arrays are the parameters ``prefix + column``."""
    rows = (
        func.unnest(*(sa.bindparam(prefix + c, type_=ARRAY(table.c[c].type)) for c in columns))
        .table_valued(*columns, with_ordinality="ordinality")
        .render_derived()
    )
    return pg_insert(table).from_select(
        list(columns), select(*(rows.c[c] for c in columns)).order_by(rows.c.ordinality)
    )


def as_arrays(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], prefix: str = ""
) -> dict[str, list[Any]]:
    return {prefix + c: [row.get(c) for row in rows] for c in columns}


_LEAD_INSERT = tuple(c.name for c in m.leads.c if c.name not in ("routed_at",))
_TURN_INSERT = ("queue", "slot", "rep_id", "subject_id", "day")
_OUTBOX_INSERT = ("event_id", "destination", "topic", "key", "value")
_OUTBOX = m.metadata.tables["router.outbox"]
_TOUCH_INSERT = tuple(c.name for c in m.touches.c)


def _routed_statement() -> Any:
    """A batch's routing written in one statement (one round trip, whatever its size):
    the leads, the turns they took, the rotations moved to their last turn, and their
    events in the outbox (the last three may be empty)."""
    leads = insert_from_arrays(m.leads, _LEAD_INSERT, "lead_").cte("routed_leads")
    turns = insert_from_arrays(m.queue_turns, _TURN_INSERT, "turn_").cte("taken_turns")
    moved = (
        func.unnest(
            sa.bindparam("moved_queue", type_=ARRAY(m.queues.c.name.type)),
            sa.bindparam("moved_slot", type_=ARRAY(m.queues.c.cursor.type)),
            sa.bindparam("moved_round", type_=ARRAY(sa.Integer)),
            sa.bindparam("moved_after", type_=ARRAY(sa.BigInteger)),
        )
        .table_valued("name", "cursor", "round", "after")
        .render_derived()
    )
    rotations = (
        update(m.queues)
        .where(m.queues.c.name == moved.c.name)
        .values(_moved_rotation(moved.c.cursor, moved.c["round"], moved.c.after))
        .cte("moved_rotations")
    )
    outbox = insert_from_arrays(_OUTBOX, _OUTBOX_INSERT, "outbox_")
    return outbox.on_conflict_do_nothing(index_elements=["event_id"]).add_cte(
        leads, turns, rotations
    )


def _moved_rotation(slot: Any, round_: Any, after: Any) -> dict[str, Any]:
    """A rotation row's new values: only a later state moves it (a recorded decision
    re-applied on rebuild never moves a rotation back)."""
    q = m.queues
    pointer = func.json_build_object("round", round_, "after", after)
    return {
        "cursor": func.greatest(q.c.cursor, slot),
        "rotation": sa.case((slot > q.c.cursor, pointer), else_=q.c.rotation),
    }


_ROUTED = _routed_statement()


async def route_new_people(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> dict[str, dict[str, Any]]:
    """Route every new lead of a batch in order, sharing the batch's loads and writes;
    returns the lead rows written, by email.

    The rotations the leads may use are locked once their accounts are known; each
    decision then sees the turns and daily counts of the ones before it, so a batch of N
    round-robin leads takes N turns.
    """
    batch = await _load_batch(session, ctx, people)
    first_of: dict[str, NewPerson] = {}
    repeats: list[NewPerson] = []
    for person in people:
        if person.email in batch.existing or person.email in first_of:
            repeats.append(person)
        else:
            first_of[person.email] = person
    states = await lock_queues(session, _queues_needed(ctx, first_of.values(), batch))
    rotations: dict[str, tuple[Member, ...]] = {}
    reps_in_order = await load_reps(session)
    leads: dict[str, dict[str, Any]] = {}
    turns: list[dict[str, Any]] = []
    events: list[Envelope] = []
    changes = LeadChanges(ctx)
    for person in first_of.values():
        lead_id = lead_id_for(person.email)
        match = _match(person.email, batch.domain_owners)
        account = batch.accounts.get(match.account_id) if match.account_id else None
        lead = lead_of(person)
        decision = batch.recorded.get(lead_id) or _decide(
            ctx, person, lead, account, batch, reps_in_order, rotations, states
        )
        if person.waited is not None:
            decision = replace(decision, reason=f"{decision.reason} ({person.waited})")
        if decision.turn is not None and decision.queue is not None:
            turn = decision.turn
            states[decision.queue] = later(states.get(decision.queue), turn.after)
            day = utc_day(person.occurred_at)
            counts = batch.counts.setdefault((decision.queue, day), {})
            counts[turn.rep_id] = counts.get(turn.rep_id, 0) + 1
            turns.append(
                {
                    "queue": decision.queue,
                    "slot": turn.slot,
                    "rep_id": turn.rep_id,
                    "subject_id": lead_id,
                    "day": day,
                }
            )
        leads[person.email] = _lead_row(person, lead_id, match, decision, batch)
        events.extend(decision_events(lead, match, decision))
        if decision.owner_id is not None and person.source_ref is not None:
            changes.writeback(lead_id, person.source_ref, decision.owner_id)
    if leads:
        moved = sorted({t["queue"] for t in turns})
        parameters = {
            **as_arrays(list(leads.values()), _LEAD_INSERT, "lead_"),
            **as_arrays(turns, _TURN_INSERT, "turn_"),
            "moved_queue": moved,
            "moved_slot": [states[name].next_slot for name in moved],
            "moved_round": [states[name].round for name in moved],
            "moved_after": [states[name].after for name in moved],
            **as_arrays(outbox_rows(ctx, events), _OUTBOX_INSERT, "outbox_"),
        }
        await session.execute(_ROUTED, parameters)
    if repeats:
        await _repeats(session, changes, repeats, batch.existing, leads)
    await changes.write(session)
    return leads


def lead_of(person: NewPerson) -> Lead:
    return Lead(
        lead_id_for(person.email),
        person.email,
        person.occurred_at,
        person.country,
        person.form_type,
        person.is_consultant,
    )


def _queues_needed(ctx: RouterContext, people: Iterable[NewPerson], batch: _Batch) -> set[str]:
    """The rotations the batch's new leads may take a turn in (a recorded decision's too:
    re-applying it moves its rotation)."""
    names: set[str] = set()
    for person in people:
        recorded = batch.recorded.get(lead_id_for(person.email))
        if recorded is not None:
            if recorded.queue is not None and recorded.turn is not None:
                names.add(recorded.queue)
            continue
        match = _match(person.email, batch.domain_owners)
        account = batch.accounts.get(match.account_id) if match.account_id else None
        name = queue_of_lead(lead_of(person), account, ctx.policy, ctx.region_map)
        if name is not None:
            names.add(name)
    return names


async def _repeats(
    session: AsyncSession,
    changes: LeadChanges,
    repeats: Sequence[NewPerson],
    existing: Mapping[str, Row[Any]],
    inserted: Mapping[str, Mapping[str, Any]],
) -> None:
    """Repeat forms and sign-ups: a touchpoint each on the lead, which keeps its owner
    (its ids in the CRMs are remembered, as ``attach_source`` does one at a time)."""
    states: dict[str, LeadState] = {}
    for person in repeats:
        if person.email not in states:
            known = existing.get(person.email)
            states[person.email] = LeadState.of(
                known._mapping if known is not None else inserted[person.email]
            )
        changes.attach(states[person.email], person.source_ref)
    await session.execute(
        pg_insert(m.touchpoints).on_conflict_do_nothing(),
        [
            {
                "event_id": p.event_id,
                "lead_id": states[p.email].id,
                "kind": p.kind,
                "form_type": p.form_type,
                "at": p.occurred_at,
            }
            for p in repeats
        ],
    )


def _decide(
    ctx: RouterContext,
    person: NewPerson,
    lead: Lead,
    account: Account | None,
    batch: _Batch,
    reps_in_order: Sequence[Rep],
    rotations: dict[str, tuple[Member, ...]],
    states: Mapping[str, RotationState],
) -> Decision:
    queue_name = queue_of_lead(lead, account, ctx.policy, ctx.region_map)
    snapshot = None
    if queue_name is not None:
        if queue_name not in rotations:
            role, region = _queue_shape(queue_name)
            in_queue = [r for r in reps_in_order if r.role == role and r.region == region]
            rotations[queue_name] = members_of(in_queue, role)
        snapshot = QueueSnapshot(
            queue_name,
            rotations[queue_name],
            states.get(queue_name, RotationState()),
            batch.counts.get((queue_name, utc_day(lead.occurred_at)), {}),
        )
    context = RoutingContext(
        {r.id: r for r in reps_in_order},
        account,
        _touches_of(person, lead, account, batch),
        batch.opportunities.get(account.account_id, []) if account else [],
        snapshot,
        ctx.region_map,
    )
    return route_lead(lead, context, ctx.policy)


def _lead_row(
    person: NewPerson, lead_id: str, match: AccountMatch, decision: Decision, batch: _Batch
) -> dict[str, Any]:
    refs = _ref_columns(person.source_ref)
    return {
        "id": lead_id,
        "email": person.email,
        "hubspot_id": refs.get("hubspot_id"),
        "salesforce_id": refs.get("salesforce_id"),
        "account_id": match.account_id,
        "match": match.how,
        "country": person.country,
        "region": decision.region,
        "form_type": person.form_type,
        "is_consultant": person.is_consultant,
        "status": "New",
        "owner_id": decision.owner_id,
        "owner_role": decision.owner_role,
        "rule": decision.rule,
        "reason": decision.reason,
        "queue": decision.queue,
        "turn": decision.turn.slot if decision.turn else None,
        "priority": decision.priority,
        "review_with_sdr_id": decision.review_with_sdr_id,
        "created_at": person.occurred_at,
        "first_touch_at": _first_touch(person, batch.later_touches),
        "source_event_id": person.event_id,
    }


async def _load_batch(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> _Batch:
    emails = sorted({p.email for p in people})
    existing = {
        r.email: r
        for r in await session.execute(select(m.leads).where(one_of(m.leads.c.email, emails)))
    }
    fresh = [p for p in people if p.email not in existing]
    batch = _Batch(existing, {}, {}, {}, {}, {}, {}, [])
    if not fresh:
        return batch
    domains = sorted({d for p in fresh for d in candidate_domains(email_domain(p.email) or "")})
    if domains:
        # The accounts come with their domains (outer join: a domain whose account row is
        # missing still matches, as an account nobody knows more about).
        rows = await session.execute(
            select(
                m.account_domains.c.domain,
                m.account_domains.c.account_id,
                m.accounts.c.id,
                m.accounts.c.name,
                m.accounts.c.region,
                m.accounts.c.owner_id,
            )
            .select_from(
                m.account_domains.outerjoin(
                    m.accounts, m.accounts.c.id == m.account_domains.c.account_id
                )
            )
            .where(one_of(m.account_domains.c.domain, domains))
        )
        for domain, account_id, known, name, region, owner_id in rows:
            batch.domain_owners.setdefault(str(domain), []).append(str(account_id))
            if known is not None:
                in_region = next((r for r in REGIONS if r == region), None)
                batch.accounts[known] = Account(known, name or "", in_region, owner_id)
    account_ids = sorted({a for ids in batch.domain_owners.values() for a in ids})
    if account_ids:
        for r in await session.execute(
            select(m.opportunities).where(
                one_of(m.opportunities.c.account_id, account_ids),
                m.opportunities.c.is_closed.is_(False),
            )
        ):
            batch.opportunities.setdefault(r.account_id, []).append(
                Opportunity(r.id, r.account_id, r.owner_id, r.is_closed, r.created_at, r.close_date)
            )
    lead_ids = [lead_id_for(p.email) for p in fresh]
    if JOURNAL.may_have_records:
        for lead_id, value in await session.execute(
            select(m.recorded_routes.c.lead_id, m.recorded_routes.c.decision).where(
                one_of(m.recorded_routes.c.lead_id, lead_ids)
            )
        ):
            batch.recorded[str(lead_id)] = decision_from_record(value)
    await _load_touches(session, ctx, fresh, emails, account_ids, batch)
    if not any(rep.daily_cap is not None for rep in await load_reps(session)):
        return batch  # the day's counts only matter to caps
    days = sorted({utc_day(p.occurred_at) for p in fresh})
    for queue, day, rep_id, n in await session.execute(
        select(m.queue_turns.c.queue, m.queue_turns.c.day, m.queue_turns.c.rep_id, func.count())
        .where(one_of(m.queue_turns.c.day, days))
        .group_by(m.queue_turns.c.queue, m.queue_turns.c.day, m.queue_turns.c.rep_id)
    ):
        batch.counts.setdefault((str(queue), day), {})[str(rep_id)] = int(n)
    return batch


async def _load_touches(
    session: AsyncSession,
    ctx: RouterContext,
    fresh: Sequence[NewPerson],
    emails: Sequence[str],
    account_ids: Sequence[str],
    batch: _Batch,
) -> None:
    """In one query: the touches the rules may count (within the window before a lead,
    on the lead, a contact with its email or its account), and the touches logged on a
    lead at or after its event (first touch; topics are not ordered)."""
    refs = sorted({v for p in fresh for v in _ref_columns(p.source_ref).values() if v})
    earliest = min(p.occurred_at for p in fresh)
    latest = max(p.occurred_at for p in fresh)
    since = earliest - timedelta(days=ctx.policy.recent_touch_days + 1)
    t = m.touches
    contact = m.contacts.alias("contact")
    on_person = [one_of(t.c.email, emails)]
    if refs:
        on_person.append(one_of(t.c.lead_ref, refs))
    # The contacts with a batch's email, as an array the touches' index is searched with.
    contacts = select(m.contacts.c.id).where(one_of(m.contacts.c.email, emails))
    around = [t.c.contact_id == sa.any_(func.array(contacts.scalar_subquery()))]
    if account_ids:
        around.append(one_of(t.c.account_id, account_ids))
    rows = await session.execute(
        select(t, contact.c.email.label("contact_email"))
        .select_from(
            t.outerjoin(
                contact, and_(contact.c.id == t.c.contact_id, one_of(contact.c.email, emails))
            )
        )
        # Each alternative on an index of its own (a bitmap OR); the windows are
        # checked again below.
        .where(t.c.at >= since, or_(*on_person, and_(t.c.at <= latest, or_(*around))))
    )
    email_set, ref_set, account_set = set(emails), set(refs), set(account_ids)
    for row in rows:
        about_person = row.email in email_set or row.lead_ref in ref_set
        if about_person and row.at >= earliest:
            batch.later_touches.append(row)
        if not since <= row.at <= latest:
            continue
        if about_person or row.contact_email is not None or row.account_id in account_set:
            # Indexed by what a lead can be touched through, so each lead reads only its own.
            for key in (
                ("email", row.email),
                ("contact_email", row.contact_email),
                ("lead_ref", row.lead_ref),
                ("account", row.account_id),
            ):
                if key[1] is not None:
                    batch.touch_index.setdefault(key, []).append(row)


def _match(email: str, domain_owners: Mapping[str, list[str]]) -> AccountMatch:
    domain = email_domain(email)
    candidates = candidate_domains(domain) if domain else []
    accounts = [
        AccountDomains(account_id, (d,))
        for d in candidates
        for account_id in domain_owners.get(d, [])
    ]
    return match_account(email, accounts)


def _touches_of(
    person: NewPerson, lead: Lead, account: Account | None, batch: _Batch
) -> list[Touch]:
    refs = {v for v in _ref_columns(person.source_ref).values() if v}
    index = batch.touch_index
    rows = {
        row.activity_id: row
        for key in (
            ("email", lead.email),
            ("contact_email", lead.email),
            *(("lead_ref", r) for r in refs),
            *((("account", account.account_id),) if account is not None else ()),
        )
        for row in index.get(key, ())
    }
    found: list[Touch] = []
    for row in rows.values():
        if row.rep_id is None:
            continue
        target: TouchTarget
        if row.contact_id is not None and row.contact_email == lead.email:
            target, subject = "contact", lead.email
        elif row.email == lead.email or (row.lead_ref is not None and row.lead_ref in refs):
            target, subject = "lead", ""
        else:
            target, subject = "account", account.label if account else ""
        found.append(Touch(row.rep_id, row.at, target, subject))
    if person.created_by_id:
        # A rep creating the lead is working it: their claim is a touch on the lead.
        found.append(Touch(person.created_by_id, lead.occurred_at, "lead"))
    return found


def _first_touch(person: NewPerson, later: Sequence[Row[Any]]) -> datetime | None:
    """A touch logged before the lead's event reached us (topics are not ordered)."""
    refs = {v for v in _ref_columns(person.source_ref).values() if v}
    times = [
        row.at
        for row in later
        if row.at >= person.occurred_at and (row.email == person.email or row.lead_ref in refs)
    ]
    return min(times) if times else None


async def queue_snapshot(
    session: AsyncSession,
    name: str,
    reps_in_order: Sequence[Rep],
    states: Mapping[str, RotationState],
    day: date,
) -> QueueSnapshot:
    role, region = _queue_shape(name)
    members = members_of([r for r in reps_in_order if r.role == role and r.region == region], role)
    counts = await session.execute(
        select(m.queue_turns.c.rep_id, func.count())
        .where(m.queue_turns.c.queue == name, m.queue_turns.c.day == day)
        .group_by(m.queue_turns.c.rep_id)
    )
    state = states.get(name, RotationState())
    return QueueSnapshot(name, members, state, {str(r): int(n) for r, n in counts})


def _queue_shape(name: str) -> tuple[Role, Region]:
    for queue_name, role, region in ALL_QUEUES:
        if queue_name == name:
            return role, region
    raise KeyError(f"unknown queue {name!r}")


async def take_turn(
    session: AsyncSession, queue: str, turn: Turn, subject_id: str, at: datetime
) -> None:
    await session.execute(
        m.queue_turns.insert().values(
            queue=queue, slot=turn.slot, rep_id=turn.rep_id, subject_id=subject_id, day=utc_day(at)
        )
    )
    await move_rotations(session, {queue: turn.after})


async def move_rotations(session: AsyncSession, moved: Mapping[str, RotationState]) -> None:
    """Store the rotations' states after turns taken outside ``route_new_people`` (which
    writes its own in its one statement), and keep the transaction's held states."""
    if not moved:
        return
    await session.execute(
        update(m.queues)
        .where(m.queues.c.name == sa.bindparam("moved_name"))
        .values(
            _moved_rotation(
                sa.bindparam("moved_slot", type_=sa.BigInteger),
                sa.bindparam("moved_round", type_=sa.Integer),
                sa.bindparam("moved_after", type_=sa.BigInteger),
            )
        ),
        [
            {
                "moved_name": n,
                "moved_slot": s.next_slot,
                "moved_round": s.round,
                "moved_after": s.after,
            }
            for n, s in sorted(moved.items())
        ],
    )
    held = await lock_queues(session, moved)
    for name, state in moved.items():
        held[name] = later(held.get(name), state)


async def load_reps(session: AsyncSession) -> list[Rep]:
    cached: list[Rep] | None = session.info.get("router.reps")
    if cached is not None:
        return cached
    rows = await session.execute(select(m.reps).order_by(m.reps.c.position))
    reps = [rep_from_row(r) for r in rows]
    # Reps change only through the API; one batch may reuse what it loaded.
    session.info["router.reps"] = reps
    return reps


def rep_from_row(row: Row[Any]) -> Rep:
    return Rep(
        id=row.id,
        role=row.role,
        region=row.region,
        name=row.name,
        active=row.active,
        certified=row.certified,
        consultant=row.consultant,
        paused=row.paused,
        out_of_office=row.out_of_office,
        weight=row.weight,
        daily_cap=row.daily_cap,
        paired_sdr_id=row.paired_sdr_id,
        position=row.position,
    )


async def load_account(session: AsyncSession, account_id: str) -> Account | None:
    row = (await session.execute(select(m.accounts).where(m.accounts.c.id == account_id))).first()
    if row is None:
        return None
    region = row.region if row.region in REGIONS else None
    return Account(row.id, row.name or "", region, row.owner_id)


def _ref_columns(ref: SourceRef | None) -> dict[str, str | None]:
    if ref is None:
        return {}
    if ref.system == "hubspot":
        return {"hubspot_id": ref.object_id}
    if ref.system == "salesforce" and ref.object_type.lower() == "lead":
        return {"salesforce_id": ref.object_id}
    return {}


@dataclass
class LeadState:
    """A lead as the events of a batch leave it: loaded once, changed in memory by the
    same rules as ``attach_source`` and ``record_status``, written in one statement."""

    id: str
    email: str
    hubspot_id: str | None
    salesforce_id: str | None
    owner_id: str | None
    status: str | None
    created_at: datetime
    first_status_change_at: datetime | None
    changed: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> LeadState:
        return cls(
            row["id"],
            row["email"],
            row["hubspot_id"],
            row["salesforce_id"],
            row["owner_id"],
            row["status"],
            row["created_at"],
            row.get("first_status_change_at"),
        )


_LEAD_COLUMNS = ("hubspot_id", "salesforce_id", "status", "first_status_change_at")


class LeadChanges:
    """What a run of events changes on existing leads, and the owner write-backs it
    queues; ``write`` stores both, a statement each."""

    def __init__(self, ctx: RouterContext) -> None:
        self.ctx = ctx
        self.leads: dict[str, LeadState] = {}
        self.writebacks: list[dict[str, Any]] = []

    def attach(self, lead: LeadState, ref: SourceRef | None) -> list[str]:
        """``attach_source``: the lead's ids in the CRMs, the owner written back there."""
        columns = {k: v for k, v in _ref_columns(ref).items() if getattr(lead, k) is None}
        if not columns:
            return []
        for column, value in columns.items():
            setattr(lead, column, value)
            lead.changed.add(column)
        self.leads[lead.id] = lead
        if ref is not None and lead.owner_id is not None:
            self.writeback(lead.id, ref, lead.owner_id)
        return list(columns)

    def status(self, lead: LeadState, status: str, at: datetime) -> None:
        """``record_status``: the status, and the first change away from "new"."""
        lead.status = status
        lead.changed.add("status")
        if status.strip().lower() != "new" and at >= lead.created_at:
            first = lead.first_status_change_at
            lead.first_status_change_at = at if first is None else min(first, at)
            lead.changed.add("first_status_change_at")
        self.leads[lead.id] = lead

    def writeback(self, lead_id: str, ref: SourceRef, owner_id: str) -> None:
        """``queue_writeback``: the owner to the CRM the lead is known in, if configured."""
        destination = self.ctx.writeback_destinations().get(ref.system)
        if destination is None:
            return
        value = {"object_type": ref.object_type, "object_id": ref.object_id, "owner_id": owner_id}
        self.writebacks.append(
            {
                "event_id": derived_event_id("router", destination, ref.object_id, owner_id),
                "destination": destination,
                "topic": "",
                "key": lead_id,
                "value": json.dumps(value).encode(),
            }
        )

    async def write(self, session: AsyncSession) -> None:
        if self.leads:
            # Only what changed is written (None keeps the stored value), as one at a time.
            await session.execute(
                update(m.leads)
                .where(m.leads.c.id == sa.bindparam("lead_id"))
                .values(
                    {
                        c: func.coalesce(
                            sa.bindparam(f"new_{c}", type_=m.leads.c[c].type), m.leads.c[c]
                        )
                        for c in _LEAD_COLUMNS
                    }
                ),
                [
                    {
                        "lead_id": lead.id,
                        **{
                            f"new_{c}": getattr(lead, c) if c in lead.changed else None
                            for c in _LEAD_COLUMNS
                        },
                    }
                    for lead in self.leads.values()
                ],
            )
        if self.writebacks:
            await add_to_outbox(session, self.writebacks)
        self.leads, self.writebacks = {}, []


# --- recorded decisions (rebuild) ------------------------------------------------------------


def decision_from_record(value: Any) -> Decision:
    p = LeadRouted.model_validate(value)
    turn = None
    if p.turn is not None and p.owner_id is not None:
        place = p.turn_place if p.turn_place is not None else -1
        turn = Turn(p.owner_id, p.turn, RotationState(p.turn + 1, p.turn_round or 0, place))
    rule: RuleName = next((r for r in _RULES if r == p.rule), "unassigned")
    region = next((r for r in REGIONS if r == p.region), None)
    return Decision(
        rule,
        p.owner_id,
        p.owner_role,
        p.queue,
        p.priority,
        p.reason,
        region,
        p.review_with_sdr_id,
        turn,
    )


_RULES: tuple[RuleName, ...] = (
    "recent_touch",
    "open_opportunity",
    "round_robin",
    "manual_review",
    "unassigned",
    "manual",
)


async def record_routes(session: AsyncSession, decisions: Sequence[LeadRouted]) -> None:
    """Keep each lead's latest decision: one with ``decided_at`` (a re-route, an admin's)
    replaces one without (the first) or an older one; in a tie the later on the topic."""
    latest: dict[str, LeadRouted] = {}
    for d in decisions:
        known = latest.get(d.lead_id)
        if known is None or (d.decided_at is not None and not _decided_before(d, known)):
            latest[d.lead_id] = d
    if not latest:
        return
    stmt = pg_insert(m.recorded_routes).values(
        [{"lead_id": d.lead_id, "decision": d.model_dump(mode="json")} for d in latest.values()]
    )
    stored = sa.cast(m.recorded_routes.c.decision["decided_at"].as_string(), sa.DateTime(True))
    new = sa.cast(stmt.excluded.decision["decided_at"].as_string(), sa.DateTime(True))
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["lead_id"],
            set_={"decision": stmt.excluded.decision},
            where=new.is_not(None) & (stored.is_(None) | (new >= stored)),
        )
    )


def _decided_before(d: LeadRouted, known: LeadRouted) -> bool:
    if known.decided_at is None or d.decided_at is None:
        return False
    return d.decided_at < known.decided_at


# --- outbox ------------------------------------------------------------------------------------


def decision_events(lead: Lead, match: AccountMatch, d: Decision) -> list[Envelope]:
    payload = LeadRouted(
        lead_id=lead.lead_id,
        email=lead.email,
        owner_id=d.owner_id,
        owner_role=d.owner_role,
        rule=d.rule,
        queue=d.queue,
        reason=d.reason,
        priority=d.priority,
        account_id=match.account_id,
        turn=d.turn.slot if d.turn else None,
        turn_round=d.turn.after.round if d.turn else None,
        turn_place=d.turn.after.after if d.turn else None,
        match=match.how,
        region=d.region,
        review_with_sdr_id=d.review_with_sdr_id,
    )
    events: list[Envelope] = [
        make_event(
            LeadRoutedEvent,
            id=derived_event_id("router", "lead.routed", lead.lead_id),
            source="router",
            occurred_at=lead.occurred_at,
            payload=payload,
        )
    ]
    if d.priority == "high" and d.owner_id is not None:
        events.append(
            notification(
                "high_priority_lead",
                [d.owner_id],
                f"High-priority lead {lead.email} ({lead.form_type}): {d.reason}",
                lead.lead_id,
                lead.occurred_at,
            )
        )
    if d.notify_waiting:
        events.append(
            notification(
                "high_priority_lead_waiting",
                d.notify_waiting,
                f"High-priority lead {lead.email} ({lead.form_type}) waits in {d.queue}: "
                f"{d.reason}",
                lead.lead_id,
                lead.occurred_at,
            )
        )
    if d.rule == "open_opportunity" and d.owner_id is not None:
        recipients = [d.owner_id, *([d.review_with_sdr_id] if d.review_with_sdr_id else [])]
        events.append(
            notification(
                "open_opportunity_review",
                recipients,
                f"Lead {lead.email}: {d.reason}",
                lead.lead_id,
                lead.occurred_at,
            )
        )
    return events


def notification(
    kind: str, recipients: Sequence[str], message: str, subject_id: str, at: datetime
) -> NotificationRequestedEvent:
    return make_event(
        NotificationRequestedEvent,
        id=derived_event_id("router", kind, subject_id, at.isoformat()),
        source="router",
        occurred_at=at,
        payload=NotificationRequested(
            kind=kind, recipients=list(recipients), message=message, subject_id=subject_id
        ),
    )


async def add_events(session: AsyncSession, ctx: RouterContext, events: Sequence[Envelope]) -> None:
    """Queue derived events in the outbox, in one statement (same rows as ``add_event``)."""
    if events:
        await add_to_outbox(session, outbox_rows(ctx, events))


def outbox_rows(ctx: RouterContext, events: Sequence[Envelope]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": e.id,
            "destination": KAFKA,
            "topic": e.topic.name(ctx.prefix),
            "key": e.key,
            "value": encode_event(e),
        }
        for e in events
    ]


async def add_to_outbox(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Outbox rows in one statement, in order (ids follow it); an id already there is
    queued once (as ``add_event`` / ``add_message``)."""
    statement = insert_from_arrays(_OUTBOX, _OUTBOX_INSERT).on_conflict_do_nothing(
        index_elements=["event_id"]
    )
    await session.execute(statement, as_arrays(rows, _OUTBOX_INSERT))


async def notify(
    session: AsyncSession,
    ctx: RouterContext,
    kind: str,
    recipients: Sequence[str],
    message: str,
    subject_id: str,
    at: datetime,
) -> None:
    await add_events(session, ctx, [notification(kind, recipients, message, subject_id, at)])


# --- people, touches, accounts, opportunities ------------------------------------------------


async def find_lead(
    session: AsyncSession, email: str | None, ref: SourceRef | None
) -> Row[Any] | None:
    about = [m.leads.c.email == email] if email else []
    about += [getattr(m.leads.c, k) == v for k, v in _ref_columns(ref).items() if v]
    if not about:
        return None
    return (await session.execute(select(m.leads).where(or_(*about)).limit(1))).first()


async def on_activities(session: AsyncSession, events: Sequence[ActivityLoggedEvent]) -> None:
    """Touches of a batch: stored in one statement, first touches updated in another."""
    rows = [
        {
            "activity_id": e.payload.activity_id,
            "rep_id": e.payload.rep_id,
            "kind": e.payload.kind,
            "at": e.occurred_at,
            "lead_ref": e.payload.lead_id,
            "contact_id": e.payload.contact_id,
            "account_id": e.payload.account_id,
            "email": e.payload.email,
        }
        for e in events
    ]
    await session.execute(
        insert_from_arrays(m.touches, _TOUCH_INSERT).on_conflict_do_nothing(),
        as_arrays(rows, _TOUCH_INSERT),
    )
    about = [
        (e.payload.email, e.payload.lead_id, e.occurred_at)
        for e in events
        if e.payload.email or e.payload.lead_id
    ]
    if not about:
        return
    touched = sa.values(
        sa.column("email", sa.String),
        sa.column("lead_ref", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
        name="touched",
    ).data(about)
    firsts = (
        select(m.leads.c.id, func.min(touched.c.at).label("first"))
        .select_from(
            m.leads.join(
                touched,
                or_(
                    m.leads.c.email == touched.c.email,
                    m.leads.c.salesforce_id == touched.c.lead_ref,
                    m.leads.c.hubspot_id == touched.c.lead_ref,
                ),
            )
        )
        .where(m.leads.c.created_at <= touched.c.at)
        .group_by(m.leads.c.id)
        .subquery()
    )
    await session.execute(
        update(m.leads)
        .where(m.leads.c.id == firsts.c.id)
        .values(
            first_touch_at=func.least(
                func.coalesce(m.leads.c.first_touch_at, firsts.c.first), firsts.c.first
            )
        )
    )


# --- conversion: Assign AE and SAO credit ----------------------------------------------------


async def on_lead_converted(
    session: AsyncSession, ctx: RouterContext, event: LeadConvertedEvent
) -> None:
    p = event.payload
    ref = p.source_ref or SourceRef(system="salesforce", object_type="Lead", object_id=p.lead_id)
    lead = await find_lead(session, p.email, ref)
    lead_key = lead.id if lead is not None else p.lead_id
    done = await session.scalar(
        select(m.conversions.c.lead_id).where(m.conversions.c.lead_id == lead_key)
    )
    if done is not None:
        return
    at = event.occurred_at
    account = await load_account(session, p.account_id) or Account(p.account_id)
    region = account.region or (lead.region if lead is not None else None)
    reps_in_order = await load_reps(session)
    reps = {r.id: r for r in reps_in_order}
    touches = await account_touches(session, ctx, account, at)
    opps = await account_opportunities(session, account.account_id)
    snapshot = None
    if region in REGIONS:
        name = ae_queue(region)
        states = await lock_queues(session, [name])
        snapshot = await queue_snapshot(session, name, reps_in_order, states, utc_day(at))
    assignment: AeAssignment = assign_ae(account, at, reps, touches, opps, snapshot, ctx.policy)
    if assignment.turn is not None and assignment.queue is not None:
        await take_turn(session, assignment.queue, assignment.turn, lead_key, at)
    sao_sdr = await sao_sdr_of(session, ctx, lead, at)
    await session.execute(
        m.conversions.insert().values(
            lead_id=lead_key,
            account_id=p.account_id,
            opportunity_id=p.opportunity_id,
            ae_id=assignment.ae_id,
            rule=assignment.rule,
            reason=assignment.reason,
            sao_sdr_id=sao_sdr,
            converted_at=at,
        )
    )
    if lead is not None:
        await session.execute(
            update(m.leads)
            .where(m.leads.c.id == lead.id)
            .values(converted_at=at, status="Converted", account_id=p.account_id)
        )
    recipients = [r for r in (assignment.ae_id, sao_sdr) if r]
    if recipients:
        await notify(session, ctx, "ae_assigned", recipients, assignment.reason, lead_key, at)


async def sao_sdr_of(
    session: AsyncSession, ctx: RouterContext, lead: Row[Any] | None, at: datetime
) -> str | None:
    if lead is None:
        return None
    move = (
        await session.execute(
            select(m.lead_moves)
            .where(m.lead_moves.c.lead_id == lead.id, m.lead_moves.c.transferred_at <= at)
            .order_by(m.lead_moves.c.transferred_at.desc())
            .limit(1)
        )
    ).first()
    if move is not None:
        return sao_credit(
            LeadMove(lead.id, move.from_sdr_id, move.to_sdr_id, move.transferred_at),
            at,
            ctx.policy,
        )
    return str(lead.owner_id) if lead.owner_role == "SDR" and lead.owner_id else None


async def account_touches(
    session: AsyncSession, ctx: RouterContext, account: Account, at: datetime
) -> list[Touch]:
    since = at - timedelta(days=ctx.policy.recent_touch_days + 1)
    contact_ids = select(m.contacts.c.id).where(m.contacts.c.account_id == account.account_id)
    rows = await session.execute(
        select(m.touches.c.rep_id, m.touches.c.at).where(
            m.touches.c.at >= since,
            m.touches.c.at <= at,
            m.touches.c.rep_id.is_not(None),
            or_(
                m.touches.c.account_id == account.account_id,
                m.touches.c.contact_id.in_(contact_ids),
            ),
        )
    )
    return [Touch(str(rep), when, "account", account.label) for rep, when in rows]


async def account_opportunities(session: AsyncSession, account_id: str) -> list[Opportunity]:
    rows = await session.execute(
        select(m.opportunities).where(and_(m.opportunities.c.account_id == account_id))
    )
    return [
        Opportunity(r.id, r.account_id, r.owner_id, r.is_closed, r.created_at, r.close_date)
        for r in rows
    ]

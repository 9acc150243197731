"""New leads: routed a batch at a time by the rules of engagement, sharing the
batch's loads and writes (load, decide with the domain, store).
"""

from __future__ import annotations

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
    Envelope,
    Event,
    FormSubmittedEvent,
    LeadRouted,
    SignupCreatedEvent,
    SourceRef,
    derived_event_id,
)
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.conversions import mark_converted
from revops.router.domain.company_names import (
    NamedAccount,
    NameIndex,
    NameMatch,
    blocking_key,
    match_company,
    normalise_company,
)
from revops.router.domain.matching import (
    AccountDomains,
    AccountMatch,
    candidate_domains,
    email_domain,
    match_account,
)
from revops.router.domain.reps import REGIONS, Rep
from revops.router.domain.rotation import Member, RotationState
from revops.router.domain.rules import (
    DEFAULT_TERRITORIES,
    Account,
    Decision,
    Lead,
    Opportunity,
    QueueSnapshot,
    RoutingContext,
    Touch,
    TouchTarget,
    members_of,
    queue_of_lead,
    route_lead,
)
from revops.router.domain.territories import TerritoryPolicy
from revops.router.domain.windows import utc_day
from revops.router.figures import count_routed
from revops.router.journal import (
    OUTBOX,
    OUTBOX_INSERT,
    decision_events,
    decision_from_record,
    match_from_record,
    outbox_rows,
)
from revops.router.lead_changes import LeadChanges, LeadState
from revops.router.policies import current_policy
from revops.router.rotations import lock_queues, moved_rotation, queue_shape, turn_taken
from revops.router.store import as_arrays, insert_from_arrays, load_reps, ref_columns


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
                state_offsets=event.state_offsets,
                state=p.state,
                employees=p.employees,
                segment=p.segment,
                company=p.company,
                received_at_s=event.received_at.timestamp(),
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
                state_offsets=event.state_offsets,
                company=s.company,
                received_at_s=event.received_at.timestamp(),
            )
        case _:
            return None


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
    # The CRM state topics' end offsets when ingest accepted the lead, each topic's by
    # partition number (None: not known).
    state_offsets: Mapping[str, Sequence[int]] | None = None
    # What territories match on besides country and form type (forms may ask for them).
    state: str | None = None
    employees: int | None = None
    segment: str | None = None
    # The company the person gave: matched against account names when the email's
    # domain matches no account.
    company: str | None = None
    # When ingest received the webhook (Unix time, so a held lead's JSON keeps it): for
    # the webhook-to-routed figure only, never for a rule.
    received_at_s: float | None = None


@dataclass
class RoutingBatch:
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
    # A rebuild's: when each recorded decision was made (None: the lead's first), and the
    # moves the journal has for the lead (account transfers), oldest first.
    decided_at: dict[str, datetime | None] = field(default_factory=dict)
    # And the account each recorded decision was made with.
    recorded_matches: dict[str, AccountMatch] = field(default_factory=dict)
    recorded_moves: dict[str, list[Row[Any]]] = field(default_factory=dict)
    # The routing policy in force for this batch (``load_routing_state`` reads it).
    territories: TerritoryPolicy = DEFAULT_TERRITORIES
    # The account each company name of the batch matched, if any (``match_person``).
    company_matches: dict[str, NameMatch | None] = field(default_factory=dict)


LEAD_INSERT = tuple(c.name for c in m.leads.c if c.name not in ("routed_at",))


_TURN_INSERT = ("queue", "slot", "rep_id", "subject_id", "day")


def _routed_statement() -> Any:
    """A batch's routing written in one statement (one round trip, whatever its size):
    the leads, the turns they took, the rotations moved to their last turn, and their
    events in the outbox (the last three may be empty)."""
    leads = insert_from_arrays(m.leads, LEAD_INSERT, "lead_").cte("routed_leads")
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
        .values(moved_rotation(moved.c.cursor, moved.c["round"], moved.c.after))
        .cte("moved_rotations")
    )
    outbox = insert_from_arrays(OUTBOX, OUTBOX_INSERT, "outbox_")
    return outbox.on_conflict_do_nothing(index_elements=["event_id"]).add_cte(
        leads, turns, rotations
    )


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
    batch = await load_routing_batch(session, ctx, people)
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
        match = batch.recorded_matches.get(lead_id) or match_person(ctx, person, batch)
        account = batch.accounts.get(match.account_id) if match.account_id else None
        lead = lead_of(person)
        recorded = batch.recorded.get(lead_id)
        if recorded is None:
            decision = decide(ctx, person, lead, account, batch, reps_in_order, rotations, states)
            count_routed(session, decision.rule, decision.queue, person.received_at_s)
        else:
            decision = recorded
        if person.waited is not None:
            decision = replace(decision, reason=f"{decision.reason} ({person.waited})")
        leads[person.email] = row = _lead_row(person, lead_id, match, decision, batch)
        if recorded is None:
            turns.extend(turn_taken(states, batch.counts, decision, lead_id, person.occurred_at))
            events.extend(decision_events(lead, match, decision))
            _write_back(changes, row, person.source_ref)
        else:
            # A recorded decision's turn is stored and counted, and its rotation moved,
            # already (the rebuild read every turn back: ``rotations.TakenTurns``). It is
            # journaled again but told and written back once: the first run sent its
            # notifications and CRM owner updates (a reset leaves none pending).
            events.append(decision_events(lead, match, decision)[0])
            _settle_recorded_owner(batch, row)
    if leads:
        moved = sorted({t["queue"] for t in turns})
        parameters = {
            **as_arrays(list(leads.values()), LEAD_INSERT, "lead_"),
            **as_arrays(turns, _TURN_INSERT, "turn_"),
            "moved_queue": moved,
            "moved_slot": [states[name].next_slot for name in moved],
            "moved_round": [states[name].round for name in moved],
            "moved_after": [states[name].after for name in moved],
            **as_arrays(outbox_rows(ctx, events), OUTBOX_INSERT, "outbox_"),
        }
        await session.execute(_ROUTED, parameters)
        if batch.decided_at:
            await _apply_recorded_facts(session, batch, [row["id"] for row in leads.values()])
    if repeats:
        await _repeats(session, changes, repeats, batch.existing, leads)
    await changes.write(session)
    return leads


def _write_back(changes: LeadChanges, row: dict[str, Any], ref: SourceRef | None) -> None:
    """The owner written back to the CRM the lead came from."""
    if row["owner_id"] is not None and ref is not None:
        changes.writeback(row["id"], ref, row["owner_id"])


def _settle_recorded_owner(batch: RoutingBatch, row: dict[str, Any]) -> None:
    """On a rebuild, a lead the first run moved after its recorded decision (an account
    transfer) has the moved owner."""
    moved = _moved_since(batch, row["id"])
    if moved is not None:
        row.update(owner_id=moved.to_sdr_id, owner_role="SDR")


def _moved_since(batch: RoutingBatch, lead_id: str) -> Row[Any] | None:
    """The lead's latest recorded move, if it came after its recorded decision (a lead's
    first decision comes before any move; a later one is compared by time)."""
    moves = batch.recorded_moves.get(lead_id)
    if not moves:
        return None
    decided = batch.decided_at.get(lead_id)
    latest = moves[-1]
    return latest if decided is None or latest.transferred_at > decided else None


async def _apply_recorded_facts(
    session: AsyncSession, batch: RoutingBatch, lead_ids: Sequence[str]
) -> None:
    """On a rebuild, what the first run did to these leads after routing them: their
    moves (``lead_moves``) and their conversion, if it was replayed before them."""
    moves = [
        {
            c: getattr(move, c)
            for c in ("lead_id", "transferred_at", "account_id", "from_sdr_id", "to_sdr_id")
        }
        for lead_id in lead_ids
        for move in batch.recorded_moves.get(lead_id, ())
    ]
    if moves:
        await session.execute(pg_insert(m.lead_moves).on_conflict_do_nothing(), moves)
    await mark_converted(session, lead_ids)


def lead_of(person: NewPerson) -> Lead:
    return Lead(
        lead_id_for(person.email),
        person.email,
        person.occurred_at,
        person.country,
        person.form_type,
        person.is_consultant,
        person.state,
        person.employees,
        person.segment,
    )


def _queues_needed(
    ctx: RouterContext, people: Iterable[NewPerson], batch: RoutingBatch
) -> set[str]:
    """The rotations the batch's new leads may take a turn in (a recorded decision takes
    none: its turn was restored with the journal's)."""
    names: set[str] = set()
    for person in people:
        if lead_id_for(person.email) in batch.recorded:
            continue
        match = match_person(ctx, person, batch)
        account = batch.accounts.get(match.account_id) if match.account_id else None
        name = queue_of_lead(lead_of(person), account, ctx.policy, batch.territories)
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
    (its ids in the CRMs are remembered: ``LeadChanges.attach``)."""
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


def decide(
    ctx: RouterContext,
    person: NewPerson,
    lead: Lead,
    account: Account | None,
    batch: RoutingBatch,
    reps_in_order: Sequence[Rep],
    rotations: dict[str, tuple[Member, ...]],
    states: Mapping[str, RotationState],
) -> Decision:
    queue_name = queue_of_lead(lead, account, ctx.policy, batch.territories)
    snapshot = None
    if queue_name is not None:
        if queue_name not in rotations:
            role, region = queue_shape(queue_name)
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
        batch.territories,
    )
    return route_lead(lead, context, ctx.policy)


def _lead_row(
    person: NewPerson, lead_id: str, match: AccountMatch, decision: Decision, batch: RoutingBatch
) -> dict[str, Any]:
    refs = ref_columns(person.source_ref)
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
        "state": person.state,
        "employees": person.employees,
        "segment": person.segment,
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
        "policy_version": decision.policy_version,
        "territory": decision.territory,
        "company": (person.company or "")[:255] or None,
        "match_score": match.score,
    }


async def load_routing_batch(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> RoutingBatch:
    emails = sorted({p.email for p in people})
    existing = {
        r.email: r
        for r in await session.execute(select(m.leads).where(one_of(m.leads.c.email, emails)))
    }
    fresh = [p for p in people if p.email not in existing]
    batch = RoutingBatch(existing, {}, {}, {}, {}, {}, {}, [])
    if not fresh:
        return batch
    lead_ids = [lead_id_for(p.email) for p in fresh]
    if ctx.journal.may_have_records:
        await load_recorded(session, lead_ids, batch)
    caps = any(rep.daily_cap is not None for rep in await load_reps(session))
    await load_routing_state(session, ctx, fresh, batch, day_counts=caps)
    return batch


async def load_routing_state(
    session: AsyncSession,
    ctx: RouterContext,
    people: Sequence[NewPerson],
    batch: RoutingBatch,
    *,
    day_counts: bool = True,
) -> None:
    """What the rules read to decide for ``people``, into ``batch``: the accounts their
    domains match, those accounts' open opportunities, the touches, and (``day_counts``:
    only caps need them) each rotation's turns on their days."""
    batch.territories = await current_policy(session, ctx)
    emails = sorted({p.email for p in people})
    domains = sorted({d for p in people for d in candidate_domains(email_domain(p.email) or "")})
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
    if ctx.settings.company_name_matching:
        await match_companies(session, ctx, people, batch)
    account_ids = sorted(
        {a for ids in batch.domain_owners.values() for a in ids} | {*batch.accounts}
    )
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
    await load_touches(session, ctx, people, emails, account_ids, batch)
    if not day_counts:
        return
    days = sorted({utc_day(p.occurred_at) for p in people})
    for queue, day, rep_id, n in await session.execute(
        select(m.queue_turns.c.queue, m.queue_turns.c.day, m.queue_turns.c.rep_id, func.count())
        .where(one_of(m.queue_turns.c.day, days))
        .group_by(m.queue_turns.c.queue, m.queue_turns.c.day, m.queue_turns.c.rep_id)
    ):
        batch.counts.setdefault((str(queue), day), {})[str(rep_id)] = int(n)


async def load_recorded(
    session: AsyncSession, lead_ids: Sequence[str], batch: RoutingBatch
) -> None:
    """A rebuild's recorded decisions of these leads, and their recorded moves."""
    for lead_id, value in await session.execute(
        select(m.recorded_routes.c.lead_id, m.recorded_routes.c.decision).where(
            one_of(m.recorded_routes.c.lead_id, lead_ids)
        )
    ):
        batch.recorded[str(lead_id)] = decision_from_record(value)
        batch.decided_at[str(lead_id)] = LeadRouted.model_validate(value).decided_at
        match = match_from_record(value)
        if match is not None:
            batch.recorded_matches[str(lead_id)] = match
    if not batch.recorded:
        return
    moves = m.recorded_moves
    for move in await session.execute(
        select(moves)
        .where(one_of(moves.c.lead_id, sorted(batch.recorded)))
        .order_by(moves.c.lead_id, moves.c.transferred_at)
    ):
        batch.recorded_moves.setdefault(str(move.lead_id), []).append(move)


async def load_touches(
    session: AsyncSession,
    ctx: RouterContext,
    fresh: Sequence[NewPerson],
    emails: Sequence[str],
    account_ids: Sequence[str],
    batch: RoutingBatch,
) -> None:
    """In one query: the touches the rules may count (within the window before a lead,
    on the lead, a contact with its email or its account), and the touches logged on a
    lead at or after its event (first touch; topics are not ordered)."""
    refs = sorted({v for p in fresh for v in ref_columns(p.source_ref).values() if v})
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


async def match_companies(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson], batch: RoutingBatch
) -> None:
    """The company names of ``people`` whose domain matched no account, scored against
    the names of the accounts sharing their first word (``company_names``); the matched
    accounts join the batch's."""
    companies = sorted(
        {
            p.company
            for p in people
            if p.company and not match_email(p.email, batch.domain_owners).matched
        }
    )
    blocks = sorted({blocking_key(normalise_company(c)) for c in companies} - {""})
    if not blocks:
        return
    names, a = m.account_names, m.accounts
    rows = await session.execute(
        select(names.c.name_key, a.c.id, a.c.name, a.c.region, a.c.owner_id)
        .select_from(names.join(a, a.c.id == names.c.account_id))
        .where(one_of(names.c.block, blocks))
    )
    index = NameIndex()
    found: dict[str, Account] = {}
    for key, account_id, name, region, owner_id in rows:
        in_region = next((r for r in REGIONS if r == region), None)
        found[account_id] = Account(account_id, name or "", in_region, owner_id)
        index.add(key, NamedAccount(account_id, name or ""))
    threshold = ctx.settings.company_name_threshold
    for company in companies:
        match = match_company(company, index, threshold)
        batch.company_matches[company] = match
        if match is not None:
            batch.accounts[match.account_id] = found[match.account_id]


def match_person(ctx: RouterContext, person: NewPerson, batch: RoutingBatch) -> AccountMatch:
    """The account of the email's domain; else, when the person gave a company, the
    account whose name scores at least ``COMPANY_NAME_THRESHOLD`` against it."""
    match = match_email(person.email, batch.domain_owners)
    if match.matched or not person.company or not ctx.settings.company_name_matching:
        return match
    found = batch.company_matches.get(person.company)
    if found is None:
        return match
    return AccountMatch(found.account_id, "company_name", match.domain, score=found.score)


def match_email(email: str, domain_owners: Mapping[str, list[str]]) -> AccountMatch:
    domain = email_domain(email)
    candidates = candidate_domains(domain) if domain else []
    accounts = [
        AccountDomains(account_id, (d,))
        for d in candidates
        for account_id in domain_owners.get(d, [])
    ]
    return match_account(email, accounts)


def _touches_of(
    person: NewPerson, lead: Lead, account: Account | None, batch: RoutingBatch
) -> list[Touch]:
    refs = {v for v in ref_columns(person.source_ref).values() if v}
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
    refs = {v for v in ref_columns(person.source_ref).values() if v}
    times = [
        row.at
        for row in later
        if row.at >= person.occurred_at and (row.email == person.email or row.lead_ref in refs)
    ]
    return min(times) if times else None

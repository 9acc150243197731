"""No lead left waiting: leads nobody could take are routed again once someone can, and an
admin can assign a lead by hand or send it through the rules again.

(Not the new leads held back a moment for CRM state: those are ``causal_order``'s.)

A lead waits in ``unassigned`` when the rules found nobody eligible in its region's
inbound queue. When a rep change lets a rep take leads of that queue (``roster``), the
region's waiting leads are routed oldest first, in the change's transaction, by the same
rules and rotation as a new lead, decided as of the change: each round-robin lead takes a
turn and moves the rotation. Every later decision of a lead (these, and the admin's) is a
new ``lead.routed`` with ``decided_at`` and an id of its own (from the lead, the time and
the turn or owner, so a replay derives the same), the owner written back to the CRMs the
lead is known in, and the usual notifications. A rebuild keeps each lead's latest decision
(``journal.record_routes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Row, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import Envelope, LeadRoutedEvent, derived_event_id
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import CLOSED_LEAD_STATUSES, RouterContext
from revops.router.domain.matching import AccountMatch, email_domain
from revops.router.domain.reps import REGIONS, Region, Rep
from revops.router.domain.rotation import Member
from revops.router.domain.rules import (
    UNASSIGNED_QUEUE,
    Decision,
    Lead,
    RuleName,
    inbound_queue,
    queue_of_lead,
)
from revops.router.domain.windows import utc_day
from revops.router.journal import add_events, decision_events
from revops.router.lead_changes import LeadChanges, lead_refs
from revops.router.leads import NewPerson, RoutingBatch, decide, load_routing_state, match_person
from revops.router.owner_clocks import store_owner_clocks
from revops.router.rotations import lock_queues, take_turn
from revops.router.store import load_reps

MANUAL: RuleName = "manual"


async def route_waiting_leads_of(
    session: AsyncSession, ctx: RouterContext, regions: Sequence[str], at: datetime
) -> list[str]:
    """Route the leads waiting in ``unassigned`` for nobody eligible in the inbound queue
    of ``regions`` (region set, no owner, not converted, not closed), oldest first, as of
    ``at``; returns the ids of those now routed (the others still wait).

    On a rebuild, a lead whose recorded decision was made at or after ``at`` is left as
    recorded: the first run saw this change before that decision.
    """
    known: list[Region] = [r for r in REGIONS if r in regions]
    if not known:
        return []
    # The rotations first, then the leads: the order every batch locks in.
    await lock_queues(session, [inbound_queue(r) for r in known])
    leads = m.leads
    query = (
        select(leads)
        .where(
            leads.c.queue == UNASSIGNED_QUEUE,
            leads.c.owner_id.is_(None),
            leads.c.converted_at.is_(None),
            one_of(leads.c.region, known),
            _still_open(),
        )
        .order_by(leads.c.created_at, leads.c.id)
        .with_for_update()
    )
    if ctx.journal.may_have_records:
        recorded = m.recorded_routes
        decided = func.coalesce(
            sa.cast(recorded.c.decision["decided_at"].as_string(), sa.DateTime(timezone=True)),
            leads.c.created_at,
        )
        query = query.where(~exists().where(recorded.c.lead_id == leads.c.id, decided >= at))
    rows = list(await session.execute(query))
    return await reroute_rows(session, ctx, rows, at, "routed once someone could take it")


async def find_lead(session: AsyncSession, lead_id: str, *, lock: bool = False) -> Row[Any] | None:
    """A lead by the router's id or its HubSpot / Salesforce id."""
    query = (
        select(m.leads)
        .where(
            or_(
                m.leads.c.id == lead_id,
                m.leads.c.hubspot_id == lead_id,
                m.leads.c.salesforce_id == lead_id,
            )
        )
        .order_by(m.leads.c.id)
        .limit(1)
    )
    return (await session.execute(query.with_for_update() if lock else query)).first()


async def reroute_lead(
    session: AsyncSession, ctx: RouterContext, lead_id: str, at: datetime
) -> Row[Any] | None:
    """An admin's re-route: the lead through the rules again as of ``at`` (a round-robin
    decision takes a turn). Nothing changes when the rules decide what the lead has.
    Returns the lead locked for this transaction (None: unknown); the caller refuses a
    converted lead before anything is decided."""
    # Every inbound rotation before the lead row: the order the consumer locks in.
    await lock_queues(session, [inbound_queue(r) for r in REGIONS])
    row = await find_lead(session, lead_id, lock=True)
    if row is None or row.converted_at is not None:
        return row
    await reroute_rows(session, ctx, [row], at, "re-routed by an admin")
    return row


async def assign_lead(
    session: AsyncSession, ctx: RouterContext, row: Row[Any], rep: Rep, reason: str, at: datetime
) -> None:
    """An admin gives the lead to ``rep`` (rule ``manual``): no rotation turn is taken,
    the decision is journaled and the owner written back."""
    decision = Decision(MANUAL, rep.id, rep.role, None, row.priority, reason, row.region)
    person = person_of(row, at)
    match = AccountMatch(row.account_id, row.match, email_domain(row.email), score=row.match_score)
    await store_decisions(session, ctx, [Rerouted(row, person, match, decision)])


@dataclass(frozen=True)
class Rerouted:
    row: Row[Any]
    person: NewPerson
    match: AccountMatch
    decision: Decision


async def reroute_rows(
    session: AsyncSession,
    ctx: RouterContext,
    rows: Sequence[Row[Any]],
    at: datetime,
    note: str,
) -> list[str]:
    """Decide ``rows`` again in order, as of ``at`` (or a lead's creation, if later), each
    seeing the turns and daily counts of the ones before; store the changed ones, with
    ``note`` after the rules' reason. Returns the ids of the leads now owned."""
    if not rows:
        return []
    people = [person_of(row, max(at, row.created_at)) for row in rows]
    batch = await load_routing_state_of(session, ctx, people)
    reps_in_order = await load_reps(session)
    needed: set[str] = set()
    for row, person in zip(rows, people, strict=True):
        match = match_person(ctx, person, batch)
        account = batch.accounts.get(match.account_id) if match.account_id else None
        name = queue_of_lead(_lead_of(row, person), account, ctx.policy, batch.territories)
        if name is not None:
            needed.add(name)
    cursors = await lock_queues(session, needed)
    rotations: dict[str, tuple[Member, ...]] = {}
    changed: list[Rerouted] = []
    for row, person in zip(rows, people, strict=True):
        lead = _lead_of(row, person)
        match = match_person(ctx, person, batch)
        account = batch.accounts.get(match.account_id) if match.account_id else None
        decision = decide(ctx, person, lead, account, batch, reps_in_order, rotations, cursors)
        if _same(row, decision):
            continue
        decision = replace(decision, reason=f"{decision.reason} ({note})")
        if decision.turn is not None and decision.queue is not None:
            # Taken now, as a conversion takes its turn: the next lead of this pass sees
            # the rotation moved (``take_turn`` keeps the locked state current) and the
            # day's count of the rep (caps).
            await take_turn(session, decision.queue, decision.turn, row.id, person.occurred_at)
            counts = batch.counts.setdefault((decision.queue, utc_day(person.occurred_at)), {})
            counts[decision.turn.rep_id] = counts.get(decision.turn.rep_id, 0) + 1
        changed.append(Rerouted(row, person, match, decision))
    await store_decisions(session, ctx, changed)
    return [c.row.id for c in changed if c.decision.owner_id is not None]


def _same(row: Row[Any], decision: Decision) -> bool:
    """The rules decided what the lead already has (still nobody, the same owner by the
    same rule): nothing to store or tell."""
    was = (row.owner_id, row.rule, row.queue)
    return decision.turn is None and was == (decision.owner_id, decision.rule, decision.queue)


_SET = (
    "owner_id",
    "owner_role",
    "rule",
    "reason",
    "queue",
    "turn",
    "priority",
    "region",
    "review_with_sdr_id",
    "account_id",
    "match",
    "policy_version",
    "territory",
    "match_score",
)


async def store_decisions(
    session: AsyncSession, ctx: RouterContext, changed: Sequence[Rerouted]
) -> None:
    """The leads' new decisions (their turns are taken already), their events and owner
    write-backs, a few statements for any number of leads; each decision is dated its
    ``person.occurred_at``."""
    if not changed:
        return
    await session.execute(
        update(m.leads)
        .where(m.leads.c.id == sa.bindparam("lead_id"))
        .values(
            {
                **{c: sa.bindparam(f"new_{c}", type_=m.leads.c[c].type) for c in _SET},
                "routed_at": func.now(),
            }
        ),
        [{"lead_id": c.row.id, **_columns(c)} for c in changed],
    )
    events: list[Envelope] = []
    changes = LeadChanges(ctx)
    for c in changed:
        events.extend(later_decision_events(_lead_of(c.row, c.person), c.match, c.decision))
        if c.decision.owner_id is not None:
            for ref in lead_refs(c.row.hubspot_id, c.row.salesforce_id):
                changes.writeback(c.row.id, ref, c.decision.owner_id, c.person.occurred_at)
    await add_events(session, ctx, events)
    await changes.write(session)
    await store_owner_clocks(
        session,
        [(c.row.id, c.person.occurred_at, c.decision.escalated_from) for c in changed],
    )


def _columns(c: Rerouted) -> dict[str, Any]:
    d = c.decision
    values = {
        "owner_id": d.owner_id,
        "owner_role": d.owner_role,
        "rule": d.rule,
        "reason": d.reason,
        "queue": d.queue,
        "turn": d.turn.slot if d.turn else None,
        "priority": d.priority,
        "region": d.region,
        "review_with_sdr_id": d.review_with_sdr_id,
        "account_id": c.match.account_id,
        "match": c.match.how,
        "policy_version": d.policy_version,
        "territory": d.territory,
        "match_score": c.match.score,
    }
    return {f"new_{k}": v for k, v in values.items()}


def later_decision_events(lead: Lead, match: AccountMatch, decision: Decision) -> list[Envelope]:
    """``decision_events`` of a lead's later decision, made at ``lead.occurred_at``: its
    ``lead.routed`` has an id of its own (the first decision's id is the lead's) and says
    when it was decided; the notifications are dated then, so their ids differ from the
    first decision's too."""
    at = lead.occurred_at
    routed, *others = decision_events(lead, match, decision)
    assert isinstance(routed, LeadRoutedEvent)
    taken = str(decision.turn.slot) if decision.turn else (decision.owner_id or "")
    event_id = derived_event_id("router", "lead.routed", lead.lead_id, at.isoformat(), taken)
    payload = routed.payload.model_copy(update={"decided_at": at})
    return [routed.model_copy(update={"id": event_id, "payload": payload}), *others]


def _still_open() -> sa.ColumnElement[bool]:
    status = m.leads.c.status
    return or_(status.is_(None), func.lower(status).not_in(CLOSED_LEAD_STATUSES))


def person_of(row: Row[Any], at: datetime) -> NewPerson:
    """The lead as the rules see a new one, as of ``at``: touches up to then count, and a
    turn is taken on that day."""
    # The rules look for touches on one CRM id: Salesforce's (activities name its leads).
    refs = lead_refs(row.hubspot_id, row.salesforce_id)[::-1]
    return NewPerson(
        row.source_event_id,
        row.email,
        at,
        "reroute",
        row.form_type,
        row.country,
        row.is_consultant,
        refs[0] if refs else None,
        None,
        state=row.state,
        employees=row.employees,
        segment=row.segment,
        company=row.company,
    )


def _lead_of(row: Row[Any], person: NewPerson) -> Lead:
    return Lead(
        row.id,
        person.email,
        person.occurred_at,
        person.country,
        person.form_type,
        person.is_consultant,
        person.state,
        person.employees,
        person.segment,
    )


async def load_routing_state_of(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> RoutingBatch:
    """What the rules read to decide for leads that already exist (``load_routing_batch``
    loads it only for new ones), without the recorded decisions, which only a rebuild's
    new leads use."""
    batch = RoutingBatch({}, {}, {}, {}, {}, {}, {}, [])
    if people:
        await load_routing_state(session, ctx, people, batch)
    return batch

"""Conversions, applied one at a time: Assign AE (a turn of the AE rotation) and
the SAO credit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    AccountDomainsSetEvent,
    Event,
    LeadAeAssigned,
    LeadConverted,
    LeadConvertedEvent,
    SourceRef,
)
from revops.events.consumer import Handler
from revops.events.db import one_of
from revops.router import models as m
from revops.router.accounts import on_domains_set
from revops.router.context import RouterContext
from revops.router.domain.assignment import AeAssignment, ae_queue, assign_ae
from revops.router.domain.reps import REGIONS
from revops.router.domain.rules import (
    Account,
    Opportunity,
    Touch,
)
from revops.router.domain.transfers import LeadMove, sao_credit
from revops.router.domain.windows import utc_day
from revops.router.journal import (
    add_events,
    add_to_outbox,
    ae_assigned_event,
    ae_assignment_of,
    assignment_from_record,
    notify,
)
from revops.router.lead_changes import opportunity_owner_writebacks
from revops.router.rotations import lock_queues, queue_snapshot, take_turn
from revops.router.store import find_lead, load_account, load_reps


def make_handler(ctx: RouterContext) -> Handler:
    """The events applied one at a time, in the batch's order: conversions (each takes a
    turn of an AE rotation) and an admin's account domains (rare). Every other event goes
    through ``consumer.apply_run``, alone or in a run."""

    async def handle(session: AsyncSession, event: Event) -> None:
        if isinstance(event, LeadConvertedEvent):
            await on_lead_converted(session, ctx, event)
        elif isinstance(event, AccountDomainsSetEvent):
            await on_domains_set(session, event)

    return handle


async def on_lead_converted(
    session: AsyncSession, ctx: RouterContext, event: LeadConvertedEvent
) -> None:
    """Assign AE and the SAO credit, journaled as ``lead.ae_assigned``; on a rebuild the
    recorded decision is applied again (its turn moves the AE rotation as it did)."""
    p = event.payload
    ref = p.source_ref or SourceRef(system="salesforce", object_type="Lead", object_id=p.lead_id)
    lead = await find_lead(session, p.email, ref)
    at = event.occurred_at
    recorded = await recorded_conversion(session, ctx, event.id)
    if recorded is not None:
        lead_key, sao_sdr = recorded.lead_id, recorded.sao_sdr_id
        assignment = assignment_from_record(recorded)
    else:
        lead_key = lead.id if lead is not None else p.lead_id
    done = await session.scalar(
        select(m.conversions.c.lead_id).where(m.conversions.c.lead_id == lead_key)
    )
    if done is not None:
        return
    if recorded is None:
        assignment = await decide_ae(session, ctx, lead, p.account_id, at)
        sao_sdr = await sao_sdr_of(session, ctx, lead, at)
    elif assignment.queue is not None and assignment.turn is not None:
        await lock_queues(session, [assignment.queue])
    if assignment.turn is not None and assignment.queue is not None:
        await take_turn(session, assignment.queue, assignment.turn, lead_key, at)
    await _store_conversion(session, lead_key, p, assignment, sao_sdr, at)
    if lead is not None and lead.id == lead_key:
        await mark_converted(session, [lead_key])
    record = ae_assignment_of(event.id, lead_key, p, assignment, sao_sdr, at)
    await add_events(session, ctx, [ae_assigned_event(record)])
    if recorded is not None:
        # The first run wrote the AE back to the CRM and told the reps (a reset leaves
        # none of that pending): once is enough.
        return
    await add_to_outbox(session, opportunity_owner_writebacks(ctx, record))
    recipients = [r for r in (assignment.ae_id, sao_sdr) if r]
    if recipients:
        await notify(session, ctx, "ae_assigned", recipients, assignment.reason, lead_key, at)


async def recorded_conversion(
    session: AsyncSession, ctx: RouterContext, conversion_id: str
) -> LeadAeAssigned | None:
    """The decision a rebuild re-applies (None: decide it now)."""
    if not ctx.journal.may_have_records:
        return None
    value = await session.scalar(
        select(m.recorded_conversions.c.assignment).where(
            m.recorded_conversions.c.conversion_id == conversion_id
        )
    )
    return None if value is None else LeadAeAssigned.model_validate(value)


async def decide_ae(
    session: AsyncSession,
    ctx: RouterContext,
    lead: Row[Any] | None,
    account_id: str,
    at: datetime,
) -> AeAssignment:
    """Assign AE by the rules, as of the conversion (a round robin locks the region's AE
    rotation and takes its next turn)."""
    account = await load_account(session, account_id) or Account(account_id)
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
    return assign_ae(account, at, reps, touches, opps, snapshot, ctx.policy)


async def _store_conversion(
    session: AsyncSession,
    lead_key: str,
    p: LeadConverted,
    assignment: AeAssignment,
    sao_sdr: str | None,
    at: datetime,
) -> None:
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


async def mark_converted(session: AsyncSession, lead_ids: Sequence[str]) -> None:
    """The leads as their conversions leave them (on a rebuild a lead may be routed again
    after its conversion was: it is marked then)."""
    c = m.conversions
    await session.execute(
        update(m.leads)
        .where(m.leads.c.id == c.c.lead_id, one_of(m.leads.c.id, list(lead_ids)))
        .values(converted_at=c.c.converted_at, status="Converted", account_id=c.c.account_id)
    )


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

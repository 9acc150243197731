"""Conversions, applied one at a time: Assign AE (a turn of the AE rotation) and
the SAO credit.
"""

from __future__ import annotations

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
    Event,
    LeadConvertedEvent,
    SourceRef,
)
from revops.events.consumer import Handler
from revops.router import models as m
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
from revops.router.journal import notify
from revops.router.rotations import lock_queues, queue_snapshot, take_turn
from revops.router.store import find_lead, load_account, load_reps


def make_handler(ctx: RouterContext) -> Handler:
    """The events applied one at a time, in the batch's order: conversions (each takes a
    turn of an AE rotation). Every other event goes through ``consumer.apply_run``, alone
    or in a run."""

    async def handle(session: AsyncSession, event: Event) -> None:
        if isinstance(event, LeadConvertedEvent):
            await on_lead_converted(session, ctx, event)

    return handle


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

"""The router's event handlers: a batch's events applied in runs of one kind (new
leads, touches, person, account, opportunity and rep changes), a few statements per run;
conversions one at a time. One event alone (the runner's fallback after a failed batch)
is a run of one, by the same code. The runner commits the batch's transaction, with the
inbox rows and the outbox rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    AccountChangedEvent,
    ActivityLoggedEvent,
    Event,
    OpportunityChangedEvent,
    PersonChangedEvent,
    RepChangedEvent,
    RoutingPolicyChangedEvent,
)
from revops.events.consumer import BatchHandler, Handler
from revops.router.accounts import on_accounts_changed
from revops.router.activities import on_activities
from revops.router.causal_order import leads_to_route_now, release_held_leads
from revops.router.context import RouterContext
from revops.router.conversions import make_handler
from revops.router.leads import NewPerson, new_person_of, route_new_people
from revops.router.opportunities import on_opportunities_changed
from revops.router.people import on_people_changed
from revops.router.policies import apply_policy_changes
from revops.router.roster import apply_rep_changes

RunKind = Literal["lead", "activity", "person", "account", "opportunity", "rep", "policy"]


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
        case RoutingPolicyChangedEvent():
            return "policy"
        case _:
            return None


def make_batch_handler(ctx: RouterContext) -> BatchHandler:
    """A whole batch: each run of consecutive events of one kind applied together, runs
    and the other events (conversions) in the batch's order, which puts the CRM state
    before the forms and sign-ups (the order of ``main.SPEC.topics``)."""
    handle = make_event_handler(ctx)

    async def handle_batch(session: AsyncSession, events: Sequence[Event]) -> None:
        run: list[Event] = []
        kind: RunKind | None = None
        for event in events:
            this = run_kind(event)
            if this != kind or this is None:
                if kind is not None:
                    await apply_run(session, ctx, kind, run)
                run, kind = [], this
            if this is not None:
                run.append(event)
                continue
            await handle(session, event)
        if kind is not None:
            await apply_run(session, ctx, kind, run)

    return handle_batch


def make_event_handler(ctx: RouterContext) -> Handler:
    """One event at a time (the runner's fallback after a failed batch): a run of one, by
    the batch path's code."""
    handle = make_handler(ctx)

    async def handle_event(session: AsyncSession, event: Event) -> None:
        kind = run_kind(event)
        if kind is None:
            await handle(session, event)
        else:
            await apply_run(session, ctx, kind, [event])

    return handle_event


async def route_new_leads(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> None:
    """Forms and sign-ups: routed now if the CRM state they may need is applied, else held.
    Held leads whose state is applied now go first (they are older), in this transaction."""
    released = await _held_leads_released(session, ctx)
    now = await leads_to_route_now(session, ctx, people)
    if len(now) < len(people):
        ctx.held_leads.expect()
    if released or now:
        await route_new_people(session, ctx, [*released, *now])


async def _held_leads_released(session: AsyncSession, ctx: RouterContext) -> list[NewPerson]:
    if ctx.settings.crm_state_wait_s <= 0 or not ctx.held_leads.batch_should_look():
        return []
    bound = timedelta(seconds=ctx.settings.crm_state_wait_s)
    released = await release_held_leads(session, ctx, bound)
    ctx.held_leads.batch_looked(some_held=released is not None)
    return released or []


async def apply_run(
    session: AsyncSession,
    ctx: RouterContext,
    kind: RunKind,
    run: Sequence[Event],
) -> None:
    """A run of one kind (the isinstance filters only narrow the types)."""
    if kind == "lead":
        people = [p for p in (new_person_of(e) for e in run) if p is not None]
        await route_new_leads(session, ctx, people)
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
    elif kind == "policy":
        policies = [e for e in run if isinstance(e, RoutingPolicyChangedEvent)]
        await apply_policy_changes(session, policies)
    else:
        opportunities = [e for e in run if isinstance(e, OpportunityChangedEvent)]
        await on_opportunities_changed(session, opportunities)

"""SLA escalation in the router: the look for leads whose owner let the first-touch SLA
pass untouched, and what it does to them (``domain.escalation`` decides).

Passing a deadline is no event: the router looks every ``SLA_CHECK_S`` as of the time of
the look, in one transaction. Each escalation is a later decision of the lead like an
admin's re-route: a ``lead.routed`` with ``decided_at`` and the reps the escalation took
the lead from (so a rebuild restores the owner, the rotation and the count of
reassignments), the owner written back to the lead's CRMs through the outbox, and a
notification to the rep who lost the lead and the one who got it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.consumer import is_infrastructure_error
from revops.events.db import one_of
from revops.events.metrics import count_on_commit
from revops.events.service import ServiceRuntime
from revops.router import models as m
from revops.router.context import CLOSED_LEAD_STATUSES, RouterContext
from revops.router.domain.escalation import Escalation, OwnedLead, escalation_of, escalation_reason
from revops.router.domain.matching import AccountMatch, email_domain
from revops.router.domain.reps import Rep
from revops.router.domain.rules import Decision, QueueSnapshot, RuleName
from revops.router.domain.territories import TerritoryPolicy
from revops.router.domain.windows import utc_day
from revops.router.figures import SLA_ESCALATIONS
from revops.router.journal import add_events, notification
from revops.router.policies import current_policy
from revops.router.rotations import lock_queues, queue_snapshot, take_turn
from revops.router.store import load_reps
from revops.router.waiting import Rerouted, person_of, store_decisions

log = logging.getLogger(__name__)

_RULE: Mapping[str, RuleName] = {"reassigned": "sla_reassigned", "manager": "sla_escalated"}
NOTICE = "sla_escalation"


async def escalate_overdue_leads(
    session: AsyncSession, ctx: RouterContext, now: datetime
) -> list[Escalation]:
    """Escalate, as of ``now``, every lead of a queue with an escalation whose owner let
    the first-touch SLA pass untouched; the escalations made, oldest lead first."""
    territories = await current_policy(session, ctx)
    queues = sorted(e.queue for e in territories.escalations)
    if not queues:
        return []
    # The rotations first, then the leads: the order every batch locks in.
    states = await lock_queues(session, queues)
    rows = list(await session.execute(_overdue(queues, now, ctx)))
    if not rows:
        return []
    reps_in_order = await load_reps(session)
    reps = {r.id: r for r in reps_in_order}
    snapshots = {
        q: await queue_snapshot(session, q, reps_in_order, states, utc_day(now)) for q in queues
    }
    made: list[tuple[Row[Any], Escalation]] = []
    for row in rows:
        escalation = _decide(row, territories, snapshots[row.queue], reps, ctx, now)
        if escalation is None:
            continue
        if escalation.turn is not None:
            await take_turn(session, row.queue, escalation.turn, row.id, now)
            snapshots[row.queue] = _after_turn(snapshots[row.queue], escalation, states)
        made.append((row, escalation))
    await _store(session, ctx, made, reps, now)
    return [e for _, e in made]


def _overdue(queues: Sequence[str], now: datetime, ctx: RouterContext) -> Any:
    """The owned, untouched, open leads of ``queues`` whose owner has had them longer than
    the target on the wall clock (a calendar's deadline is never earlier), oldest first,
    locked; each with its owner clock."""
    leads, clocks = m.leads.c, m.owner_clocks.c
    since = func.coalesce(clocks.owner_since, leads.created_at)
    status = leads.status
    return (
        select(m.leads, clocks.owner_since, clocks.escalated_from)
        .select_from(m.leads.outerjoin(m.owner_clocks, clocks.lead_id == leads.id))
        .where(
            one_of(leads.queue, queues),
            leads.owner_id.is_not(None),
            leads.rule != _RULE["manager"],
            leads.converted_at.is_(None),
            or_(leads.first_touch_at.is_(None), leads.first_touch_at > now),
            or_(status.is_(None), func.lower(status).not_in(CLOSED_LEAD_STATUSES)),
            since < now - ctx.policy.first_touch_target,
            # A transfer since gave the lead to the account's SDR: the account's now.
            ~exists().where(
                m.lead_moves.c.lead_id == leads.id, m.lead_moves.c.transferred_at >= since
            ),
        )
        .order_by(leads.created_at, leads.id)
        .with_for_update(of=m.leads)
    )


def _decide(
    row: Row[Any],
    territories: TerritoryPolicy,
    snapshot: QueueSnapshot,
    reps: Mapping[str, Rep],
    ctx: RouterContext,
    now: datetime,
) -> Escalation | None:
    lead = OwnedLead(
        row.id,
        row.owner_id,
        row.queue,
        row.owner_since or row.created_at,
        row.first_touch_at,
        tuple(row.escalated_from or ()),
    )
    policy = ctx.policy
    calendar = policy.sla_calendar(row.queue)
    rule = territories.escalation_of(row.queue)
    return escalation_of(lead, rule, snapshot, reps, calendar, policy.first_touch_target, now)


def _after_turn(
    snapshot: QueueSnapshot, escalation: Escalation, states: Mapping[str, Any]
) -> QueueSnapshot:
    """The queue as the next lead of this look sees it: the pointer moved (``take_turn``
    kept the locked state current) and the rep's count of the day one more (caps)."""
    assert escalation.turn is not None
    counts = dict(snapshot.assigned_today)
    counts[escalation.to_rep_id] = counts.get(escalation.to_rep_id, 0) + 1
    return replace(snapshot, state=states[snapshot.name], assigned_today=counts)


async def _store(
    session: AsyncSession,
    ctx: RouterContext,
    made: Sequence[tuple[Row[Any], Escalation]],
    reps: Mapping[str, Rep],
    now: datetime,
) -> None:
    """The escalations as later decisions (journaled, written back) and their notices."""
    changed: list[Rerouted] = []
    notices = []
    target = ctx.policy.first_touch_target
    for row, e in made:
        reason = escalation_reason(e, target, row.queue)
        decision = Decision(
            _RULE[e.kind],
            e.to_rep_id,
            reps[e.to_rep_id].role,
            row.queue,
            row.priority,
            reason,
            row.region,
            turn=e.turn,
            territory=row.territory,
            policy_version=row.policy_version,
            escalated_from=e.escalated_from,
        )
        match = AccountMatch(
            row.account_id, row.match, email_domain(row.email), score=row.match_score
        )
        changed.append(Rerouted(row, person_of(row, now), match, decision))
        count_on_commit(session, SLA_ESCALATIONS.labels(row.queue, e.kind).inc)
        message = f"Lead {row.email} moved from {e.from_rep_id} to {e.to_rep_id}: {reason}"
        notices.append(notification(NOTICE, [e.from_rep_id, e.to_rep_id], message, row.id, now))
    await store_decisions(session, ctx, changed)
    await add_events(session, ctx, notices)


async def watch_sla(runtime: ServiceRuntime) -> None:
    """The router's background look for leads to escalate (``SLA_CHECK_S``; 0: none)."""
    ctx = runtime.context
    assert isinstance(ctx, RouterContext)
    every = ctx.settings.sla_check_s
    while every > 0 and not runtime.stopping.is_set():
        try:
            async with runtime.database.transaction() as session:
                made = await escalate_overdue_leads(session, ctx, datetime.now(UTC))
            if made:
                runtime.relay.wake()
                log.info("escalated leads past their first-touch SLA", extra={"leads": len(made)})
        except Exception as exc:
            # Postgres away, or a deadlock with a batch: the next look tries again (each
            # is as of its own time, so a lead overdue then is escalated then).
            level = logging.WARNING if is_infrastructure_error(exc) else logging.ERROR
            log.log(level, "SLA escalation look failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), every)

"""The router's SLA reads: the breaches of the first-touch target and the
first-status-change limit, a page of breaches at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    case,
    column,
    func,
    or_,
    select,
    true,
    values,
)

from revops.events.contract import Page
from revops.events.service import (
    NEEDS_A_TOKEN,
    Limit,
    Moment,
    Offset,
    ReadAccess,
    RuntimeDep,
    ServiceRuntime,
    SessionDep,
)
from revops.router import models as m
from revops.router.domain.rules import RoutingPolicy
from revops.router.domain.sla import SlaKind, breaches
from revops.router.settings import RouterSettings
from revops.router.sla_hours import lead_times

router = APIRouter(responses=NEEDS_A_TOKEN, tags=["sla"])


class BreachOut(BaseModel):
    lead_id: str = Field(description="the router's id of the lead")
    email: str = Field(description="the lead's email, lower case")
    owner_id: str | None = Field(description="the rep who owns the lead; null: nobody yet")
    kind: SlaKind = Field(description="which SLA the lead missed")
    allowed_s: float = Field(description="the SLA's limit, in seconds")
    took_s: float = Field(
        description="seconds from the lead's arrival to what stopped the clock, or to "
        "as_of while nothing has"
    )
    open: bool = Field(description="nothing has stopped the clock yet: the breach still grows")
    created_at: datetime = Field(description="when the lead arrived")


class BreachPage(Page[BreachOut]):
    """A page of SLA breaches: one item per lead and SLA missed."""


_KINDS: tuple[SlaKind, ...] = ("first_touch", "first_status_change")
# One row per lead and kind, 0 the first touch and 1 the status change: a lead that misses
# both is listed twice, first touch first.
_KIND_ORDER = values(column("kind_order", Integer), name="kinds").data([(0,), (1,)])


def late_conditions(
    policy: RoutingPolicy, now: datetime
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The SQL of ``domain.sla.breaches``: missed the first touch, missed the status change
    (a conversion by ``now`` stops both clocks)."""
    leads = m.leads.c
    converted = case((leads.converted_at <= now, leads.converted_at))
    touched = func.least(leads.first_touch_at, converted)
    changed = func.least(leads.first_status_change_at, converted)
    first_touch_late = or_(
        touched.is_(None) & (leads.created_at < now - policy.first_touch_target),
        touched - leads.created_at > policy.first_touch_target,
    )
    status_late = or_(
        changed.is_(None) & (leads.created_at < now - policy.first_status_change_limit),
        changed - leads.created_at > policy.first_status_change_limit,
    )
    return first_touch_late, status_late


def count_breaches(policy: RoutingPolicy, now: datetime, since: datetime | None) -> Select[Any]:
    """The number of breaches ``late_conditions`` finds among the leads that arrived by
    ``now`` (and from ``since``), read from indexes instead of every lead: per SLA, the
    leads whose clock still runs and that arrived before the limit, plus those whose clock
    stopped after more than the limit, plus the leads converted after ``now`` (for them
    the conversion had not yet stopped the clock, so they are judged one by one)."""
    leads = m.leads.c
    arrived = [leads.created_at <= now]
    if since is not None:
        arrived.append(leads.created_at >= since)
    not_converted_yet = leads.converted_at > now
    settled = or_(leads.converted_at.is_(None), leads.converted_at <= now)
    first_touch_late, status_late = late_conditions(policy, now)
    parts = [
        select(func.count()).where(*arrived, not_converted_yet, first_touch_late),
        select(func.count()).where(*arrived, not_converted_yet, status_late),
    ]
    for clock, limit in (
        (leads.first_touch_at, policy.first_touch_target),
        (leads.first_status_change_at, policy.first_status_change_limit),
    ):
        running = [clock.is_(None), leads.converted_at.is_(None)]
        parts.append(select(func.count()).where(*arrived, *running, leads.created_at < now - limit))
        took = func.least(clock, leads.converted_at) - leads.created_at
        parts.append(select(func.count()).where(took > limit, *arrived, settled))
    total: Any = sum((part.scalar_subquery() for part in parts[1:]), parts[0].scalar_subquery())
    return select(total)


def breach_page(policy: RoutingPolicy, now: datetime, since: datetime | None) -> Select[Any]:
    """The breaches in list order: the leads in the order of their index, each crossed
    with the two kinds, so a page stops reading once it is full."""
    first_touch_late, status_late = late_conditions(policy, now)
    in_range = [m.leads.c.created_at <= now]
    if since is not None:
        in_range.append(m.leads.c.created_at >= since)
    kind = _KIND_ORDER.c.kind_order
    late = or_((kind == 0) & first_touch_late, (kind == 1) & status_late)
    return (
        select(m.leads, kind)
        .select_from(m.leads.join(_KIND_ORDER, true()))
        .where(late, *in_range)
        .order_by(m.leads.c.created_at, m.leads.c.id, kind)
    )


@router.get("/sla/breaches", dependencies=[ReadAccess])
async def sla_breaches(
    session: SessionDep,
    runtime: RuntimeDep,
    as_of: Moment | None = None,
    since: Moment | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> BreachPage:
    """Leads that missed the first-touch target or the first-status-change limit; leads
    still waiting count as of ``as_of`` (default: now). A conversion stops both clocks:
    a lead converted within the limit breaches nothing, one converted after it is a
    closed breach (``open`` false) that took until the conversion. A page of breaches, in
    the order the leads arrived (``since``: those that arrived then or later)."""
    settings = runtime.settings
    assert isinstance(settings, RouterSettings)
    policy = settings.policy()
    now = as_of or datetime.now(UTC)
    page = breach_page(policy, now, since).limit(limit).offset(offset)
    # The total reads an index entry per breach (150,000 with 100,000 leads): it is
    # counted on a connection of its own while the page is read and judged, so the answer
    # waits for the longer of the two, not for both. Each is its own statement, as two on
    # one connection would be: both judge as of the same ``now``.
    async with asyncio.TaskGroup() as both:
        counted = both.create_task(_total(runtime, count_breaches(policy, now, since)))
        items = [_breach(row, policy, now) for row in await session.execute(page)]
    return BreachPage(
        items=[b for b in items if b], total=counted.result(), limit=limit, offset=offset
    )


async def _total(runtime: ServiceRuntime, count: Select[Any]) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(count) or 0)


def _breach(row: Any, policy: RoutingPolicy, now: datetime) -> BreachOut | None:
    times = lead_times(row)
    kind = _KINDS[row.kind_order]
    for found in breaches(times, policy, now):
        if found.kind == kind:
            return BreachOut(
                lead_id=row.id,
                email=row.email,
                owner_id=row.owner_id,
                kind=found.kind,
                allowed_s=found.allowed.total_seconds(),
                took_s=found.took.total_seconds(),
                open=found.open,
                created_at=row.created_at,
            )
    return None

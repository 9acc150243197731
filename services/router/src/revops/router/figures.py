"""The router's business figures at /metrics (docs/METRICS.md): leads routed by rule and
queue, the time from the webhook to the routing, leads waiting for an owner, open SLA
breaches. Counted once the routing commits; the waiting leads and breaches are read
from the leads table when Prometheus scrapes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.metrics import count_on_commit
from revops.events.service import GaugeReader
from revops.router import models as m
from revops.router.domain.rules import WAITING_QUEUES, RoutingPolicy
from revops.router.domain.sla import breaches
from revops.router.sla_hours import lead_times

LEADS_ROUTED = Counter(
    "revops_leads_routed_total",
    "New leads routed, by the rule that decided and the queue (none: a named owner)",
    ["rule", "queue"],
)
SLA_ESCALATIONS = Counter(
    "revops_sla_escalations_total",
    "Leads taken from an owner who let the first-touch SLA pass untouched, by queue and "
    "where they went (reassigned: the next rep of the rotation; manager)",
    ["queue", "kind"],
)
WEBHOOK_TO_ROUTED = Histogram(
    "revops_lead_webhook_to_routed_seconds",
    "From ingest receiving the lead's webhook to the router committing its routing",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LEADS_WAITING = Gauge(
    "revops_leads_waiting",
    "Leads waiting for an owner in the unassigned and manual review queues",
    ["queue"],
    multiprocess_mode="livemostrecent",
)
SLA_BREACHES_OPEN = Gauge(
    "revops_sla_breaches_open",
    "Leads past an SLA with the clock still running (no touch or status change yet)",
    ["kind"],
    multiprocess_mode="livemostrecent",
)


def count_routed(
    session: AsyncSession, rule: str, queue: str | None, received_at_s: float | None
) -> None:
    """One lead routed by a decision made now (not one re-applied from the journal);
    ``received_at_s``: when ingest received its webhook (Unix time), if known."""
    count_on_commit(session, LEADS_ROUTED.labels(rule, queue or "none").inc)
    if received_at_s is not None:
        count_on_commit(session, _observe_since(received_at_s))


def _observe_since(received_at_s: float) -> Callable[[], None]:
    def observe() -> None:
        # At the commit: the routing is visible from then on.
        WEBHOOK_TO_ROUTED.observe(max(time.time() - received_at_s, 0.0))

    return observe


def read_waiting_leads() -> GaugeReader:
    async def read(session: AsyncSession) -> None:
        rows = await session.execute(
            select(m.leads.c.queue, func.count())
            .where(
                m.leads.c.queue.in_(sorted(WAITING_QUEUES)),
                m.leads.c.owner_id.is_(None),
                m.leads.c.converted_at.is_(None),
            )
            .group_by(m.leads.c.queue)
        )
        counts = {str(queue): int(n) for queue, n in rows}
        for queue in WAITING_QUEUES:
            LEADS_WAITING.labels(queue).set(counts.get(queue, 0))

    return read


def read_open_breaches(policy: RoutingPolicy) -> GaugeReader:
    """The breaches ``GET /sla/breaches`` lists as open: past the limit, nothing yet that
    stops the clock (a touch, a status change, a conversion). With business-hours
    calendars, the leads late on the wall clock (a superset) are counted in business
    hours."""

    async def read(session: AsyncSession) -> None:
        now = datetime.now(UTC)
        not_converted = or_(m.leads.c.converted_at.is_(None), m.leads.c.converted_at > now)
        late = {
            "first_touch": (m.leads.c.first_touch_at, policy.first_touch_target),
            "first_status_change": (
                m.leads.c.first_status_change_at,
                policy.first_status_change_limit,
            ),
        }
        for kind, (happened, allowed) in late.items():
            wall_late = (happened.is_(None), not_converted, m.leads.c.created_at < now - allowed)
            if not policy.sla_calendars:
                count = await session.scalar(select(func.count()).where(*wall_late))
            else:
                rows = await session.execute(select(m.leads).where(*wall_late))
                count = sum(
                    any(b.kind == kind for b in breaches(lead_times(r), policy, now)) for r in rows
                )
            SLA_BREACHES_OPEN.labels(kind).set(int(count or 0))

    return read

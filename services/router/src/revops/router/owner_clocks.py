"""Since when a lead's owner has it, when a later decision gave it (a waiting lead
routed, an admin's, the SLA escalation), and the reps the escalation took it from: the
first-touch clock the escalation reads. A rebuild writes them from the recorded decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import LeadRouted
from revops.router import models as m


async def store_owner_clocks(
    session: AsyncSession, clocks: Sequence[tuple[str, datetime, Sequence[str]]]
) -> None:
    """Since when each lead's owner has it, and the reps the escalation took it from
    (``models.owner_clocks``): (lead id, decided at, escalated from)."""
    if not clocks:
        return
    rows = [
        {"lead_id": lead_id, "owner_since": at, "escalated_from": list(lost)}
        for lead_id, at, lost in clocks
    ]
    statement = pg_insert(m.owner_clocks)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["lead_id"],
            set_={
                "owner_since": statement.excluded.owner_since,
                "escalated_from": statement.excluded.escalated_from,
            },
            # A decision never replaces a later one (a rebuild reads them in any order).
            where=m.owner_clocks.c.owner_since <= statement.excluded.owner_since,
        ),
        rows,
    )


async def record_owner_clocks(session: AsyncSession, routes: Sequence[LeadRouted]) -> None:
    """A rebuild's clocks: each lead's latest later decision among ``routes`` (a first
    decision has no ``decided_at``: its lead's clock is its arrival)."""
    latest: dict[str, LeadRouted] = {}
    for route in routes:
        known = latest.get(route.lead_id)
        if route.decided_at is not None and (
            known is None or known.decided_at is None or known.decided_at <= route.decided_at
        ):
            latest[route.lead_id] = route
    await store_owner_clocks(
        session,
        [(r.lead_id, r.decided_at, r.escalated_from) for r in latest.values() if r.decided_at],
    )

"""Touches (emails, calls, meetings by reps): stored, and first touches of leads."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import (
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    ActivityLoggedEvent,
)
from revops.router import models as m
from revops.router.store import as_arrays, insert_from_arrays

_TOUCH_INSERT = tuple(c.name for c in m.touches.c)


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
